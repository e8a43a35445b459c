"""Real FSDP2 sharding on CPU: two gloo processes shard every agent's model (half of every parameter each),
one sharded ILR step updates the weights as one unsharded process does on the same global batch, and the
run saves sharded intermediate checkpoints (torch distributed checkpoint) and a weights-only final one.

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
    two = _fields(tiny_run, sharded, num_processes=2, accelerate_config="fsdp2", max_steps=2)
    train(ILRConfig.from_dict(two))
    train(ILRConfig.from_dict(_fields(tiny_run, single, per_device_train_batch_size=8, max_steps=1)))
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


def sharded_weights(checkpoint: Path, scratch: Path) -> dict[str, np.ndarray]:
    """The full weights of a sharded (torch distributed) checkpoint, read in this one process."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(checkpoint / "pytorch_model_fsdp_0", scratch)
    return {k: v.numpy() for k, v in torch.load(scratch)["model"].items()}


def test_intermediate_checkpoints_are_sharded_and_the_last_is_weights_only(runs):
    for agent in ("agent_0", "agent_1"):
        first, last = (runs[0] / agent / f"checkpoint-{s}" for s in (1, 2))
        for part in ("pytorch_model_fsdp_0", "optimizer_0"):  # one shard file per process, nothing gathered
            assert sorted(p.name for p in (first / part).glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
        assert not (first / "model.safetensors").exists() and not (first / "optimizer.pt").exists()
        assert (last / "model.safetensors").is_file() and (last / "config.json").is_file()
        assert not any((last / p).exists() for p in ("optimizer.pt", "optimizer_0", "pytorch_model_fsdp_0"))


def test_one_sharded_step_matches_one_unsharded_step(runs, tmp_path):
    from safetensors.numpy import load_file

    for agent, base in (("agent_0", "tiny"), ("agent_1", "tiny-llama")):
        before = load_file(str(Path(resolve_model(base)) / "model.safetensors"))
        two = sharded_weights(runs[0] / agent / "checkpoint-1", tmp_path / f"{agent}.pt")
        one = load_file(str(runs[1] / agent / "checkpoint-1" / "model.safetensors"))
        shared = sorted(set(one) & set(before))
        assert shared and set(one) <= set(two)
        update = max(float(np.abs(one[k] - before[k]).max()) for k in shared)
        assert update > 1e-3  # the step moved the weights
        worst = max(float(np.abs(two[k] - one[k]).max()) for k in shared)
        assert worst <= RELATIVE_TOL * update, (agent, worst, update)


@pytest.mark.slow
def test_resume_from_a_sharded_checkpoint_matches_the_uninterrupted_run(runs, tmp_path, tiny_run):
    """Crash after step 1 (its sharded checkpoint committed, step 2 not): the resumed run loads the shards of
    weights and AdamW state and ends where the uninterrupted run ended (measured: bit-identical)."""
    import shutil

    from safetensors.numpy import load_file

    crashed = tmp_path / "crashed"
    shutil.copytree(runs[0], crashed)
    for agent in ("agent_0", "agent_1"):
        shutil.rmtree(crashed / agent / "checkpoint-2")
    (crashed / "checkpoints" / "manifest-00000002.json").unlink()
    fields = _fields(tiny_run, crashed, num_processes=2, accelerate_config="fsdp2", max_steps=2, resume=True)
    assert train(ILRConfig.from_dict(fields)).resumed_from == 1
    for agent in ("agent_0", "agent_1"):
        done, again = (
            load_file(str(r / agent / "checkpoint-2" / "model.safetensors")) for r in (runs[0], crashed)
        )
        assert sorted(done) == sorted(again)
        for key in done:
            np.testing.assert_allclose(again[key], done[key], atol=1e-6)


def _ilr_rows(run: Path, step: int) -> dict[str, dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["agent"]: r for r in rows if r.get("kind") == "ilr" and r["step"] == step}


def test_step_curves_cover_every_process_questions(runs):
    """Each process plays 2 of the step's 4 questions; the logged rows (mode mix, accuracy per mode,
    rewards, calibration shift) are those of all 4, as the single process logs them for the same batch."""
    two, one = (_ilr_rows(r, 1) for r in runs)
    assert sorted(two) == sorted(one) == ["agent_0", "agent_1"]
    for agent, row in two.items():
        assert sum(row["mode_counts"].values()) == 4
        assert row["mode_counts"] == one[agent]["mode_counts"]
        for key in ("reward_raw_mean", "reward_cal_mean", "accuracy", "truncated_fraction"):
            assert row[key] == pytest.approx(one[agent][key], abs=1e-6), key
        assert row["accuracy_by_mode"] == pytest.approx(one[agent]["accuracy_by_mode"], abs=1e-6)
        assert row["completion_tokens"] == one[agent]["completion_tokens"]
        assert row["shift"] == pytest.approx(one[agent]["shift"], abs=1e-6)
