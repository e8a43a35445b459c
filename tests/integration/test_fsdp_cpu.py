"""Real FSDP2 sharding on CPU: two gloo processes shard every agent's model (half of every parameter each),
and one sharded ILR step updates the weights as one unsharded process does on the same global batch.

Tolerance: plain SGD (lr 1.0), so the update is the gradient itself and the comparison reads the gradient's
agreement, not an optimizer's amplification of round-off (Adam's first step divides by |g|, which turns
float32 noise on near-zero gradients into visible differences). Measured: max |w_2proc - w_1proc| = 3.5e-7
against a largest update of 0.09 (4e-6 of it); the test allows 1e-4 of the largest update.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")

from experiments.pipeline.methods import train
from ilr_agents.config import ILRConfig
from ilr_agents.models import resolve_model

RELATIVE_TOL = 1e-4


def _fields(tiny_run, out: Path, **overrides) -> dict:
    return tiny_run(
        out,
        max_steps=1,
        save_steps=1,
        rollout_batching="question",  # per-question seeds: both runs sample the same replies
        grpo={"mask_truncated_completions": False, "learning_rate": 1.0, "optim": "sgd"},
        shared_prompt_forward=False,
        **overrides,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("fsdp_cpu")
    sharded, single = tmp / "sharded", tmp / "single"
    train(ILRConfig.from_dict(_fields(tiny_run, sharded, num_processes=2, accelerate_config="fsdp2")))
    train(ILRConfig.from_dict(_fields(tiny_run, single, per_device_train_batch_size=8)))
    return sharded, single


def test_every_agent_is_sharded_across_both_processes(runs):
    placement = json.loads((runs[0] / "placement.json").read_text())
    assert placement["num_processes"] == 2
    assert placement["preparation"] == {"ran_on_rank": 0, "processes": 1}
    assert sorted(placement["agents"]) == ["agent_0", "agent_1"]
    for row in placement["agents"].values():
        assert row["sharded"] and sum(row["local_numel"]) == row["full_numel"]
        assert all(n < row["full_numel"] for n in row["local_numel"])
        assert row["param_class"] == [["DTensor"], ["DTensor"]] and row["dtypes"] == [["float32"]] * 2
        assert row["devices"] == [["cpu"], ["cpu"]] and row["distributed_type"] == ["FSDP", "FSDP"]
    alone = json.loads((runs[1] / "placement.json").read_text())
    assert alone["num_processes"] == 1 and not any(r["sharded"] for r in alone["agents"].values())


def test_one_sharded_step_matches_one_unsharded_step(runs):
    from safetensors.numpy import load_file

    for agent, base in (("agent_0", "tiny"), ("agent_1", "tiny-llama")):
        before = load_file(str(Path(resolve_model(base)) / "model.safetensors"))
        two, one = (load_file(str(r / agent / "checkpoint-1" / "model.safetensors")) for r in runs)
        shared = sorted(set(one) & set(before))
        assert shared and set(one) <= set(two)
        update = max(float(np.abs(one[k] - before[k]).max()) for k in shared)
        assert update > 1e-3  # the step moved the weights
        worst = max(float(np.abs(two[k] - one[k]).max()) for k in shared)
        assert worst <= RELATIVE_TOL * update, (agent, worst, update)
