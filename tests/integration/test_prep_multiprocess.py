"""Two processes (gloo on CPU) under the fsdp2 accelerate config: preparation runs once and every rank
gets its result; the auxiliary models hold their real weights on every rank.

Why the fsdp2 config: its ``fsdp_cpu_ram_efficient_loading`` makes transformers load every model as zeros
on ranks > 0 (expecting a broadcast that only ``accelerator.prepare``d models get), so a reward model loaded
on rank 1 scored everything 0, and a preparation run there fitted γ = -6 on models that never answer."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from experiments.pipeline.launch import launch_command
from ilr_agents.config import ILRConfig

pytest.importorskip("trl")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, tiny_run) -> list[dict]:
    tmp = tmp_path_factory.mktemp("prep2")
    fields = tiny_run(
        tmp / "run",
        num_processes=2,
        accelerate_config="fsdp2",
        mixed_precision="no",
        shared_prompt_forward=False,
        max_steps=1,
        difficulty="pass_rate",
        abilities="rasch",
        train_limit=4,
        validation_limit=2,
        max_completion_length=4,
        max_stage_tokens=4,
    )
    config = ILRConfig.from_dict(fields)
    config_file = tmp / "run.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict()))
    probe = [str(ROOT / "tests" / "integration" / "prep_probe.py"), str(config_file), str(tmp)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        launch_command(config, config_file, probe),
        cwd=ROOT,
        env=env,
        check=False,
        timeout=600,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((tmp / f"prep.rank{r}.json").read_text()) for r in (0, 1)]


def test_reward_model_has_its_real_weights_on_every_rank(two_ranks):
    rank0, rank1 = two_ranks
    assert rank0["reward_model_abs_sum"] > 0
    assert rank1["reward_model_abs_sum"] == pytest.approx(rank0["reward_model_abs_sum"], rel=1e-6)
    assert rank1["reward_model_scores"] == pytest.approx(rank0["reward_model_scores"], abs=1e-5)


def test_preparation_runs_once_and_every_rank_gets_its_result(two_ranks):
    rank0, rank1 = two_ranks
    assert rank0["base_model_loads"] > 0 and rank1["base_model_loads"] == 0
    assert rank1["abilities"] == rank0["abilities"]
    assert rank1["difficulty"] == rank0["difficulty"]
