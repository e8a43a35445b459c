"""`--dry-run`: a preset is validated and its resolved plan printed without loading any model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.commands.compare import CompareConfig
from experiments.pipeline.memory import GIB, estimate_memory
from experiments.pipeline.plan import compare_plan, training_shape

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from experiments.cli import main
code = main(sys.argv[1:])
# TRL's GRPOConfig is built to validate `grpo:` (that imports torch), but no weight may exist
import gc
torch = sys.modules.get("torch")
modules = [o for o in gc.get_objects() if isinstance(o, torch.nn.Module)] if torch is not None else []
print("LIVE PARAMETERS:", sum(p.numel() for m in modules for p in m.parameters(recurse=False)))
raise SystemExit(code)
"""


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", PROBE, *argv], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_compare_dry_run_prints_the_paper_plan_without_loading_a_model():
    done = run_cli("compare", "--config", "paper-llama8b-qwen7b", "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "LIVE PARAMETERS: 0" in out  # not one weight exists: no model was loaded
    launch = (
        "accelerate launch --config_file experiments/accelerate/fsdp2.yaml --num_processes 8 "
        "--mixed_precision bf16 -m experiments.cli train --config"
    )
    assert "ilr compare --config paper-llama8b-qwen7b" in out and launch in out
    assert "sharding: FSDP2 over 8 processes" in out
    assert "precision: full fine-tuning: float32 master weights and AdamW state, bf16 autocast compute" in out
    assert "graded = correctness + 0.5 x reward model Skywork/Skywork-Reward-V2-Qwen3-0.6B" in out
    assert "difficulty: D_q from" in out
    assert "test gsm8k:test: 1319" in out and "test aime24:test: 30" in out and "train: " in out
    assert "= training peak per GPU" in out and "= evaluation peak per GPU" in out


def test_plan_memory_is_the_estimate_of_the_largest_method():
    config = CompareConfig.from_yaml("paper-llama8b-qwen7b")
    plan = compare_plan(config, "paper-llama8b-qwen7b")
    ilr = config.training_config("ilr", 0)
    expected = estimate_memory(training_shape(ilr, config.eval_batch_size, 512 + config.eval_max_new_tokens))
    assert plan.memory == expected  # ILR's prompts carry the discussion: the larger of the two methods
    assert plan.memory.training / GIB < 80 and not [n for n in plan.notes if "GiB per GPU" in n]
    assert [size for _, size in plan.models] == [8_030_261_248, 7_615_616_512]


@pytest.mark.parametrize("preset", ["paper-llama8b-qwen14b", "paper-qwen7b-qwen14b"])
def test_14b_paper_presets_shard_and_say_they_need_more_than_80_gb(preset):
    plan = compare_plan(CompareConfig.from_yaml(preset), preset)
    assert plan.sharding.startswith("FSDP2 over 8 processes")
    assert plan.memory is not None and 80 < plan.memory.training / GIB < 141  # an H200 holds it
    assert any("more than a 80 GiB GPU" in n and "lora: true" in n for n in plan.notes)


def test_unsharded_paper_preset_is_flagged_as_not_fitting():
    config = CompareConfig.from_yaml("paper-llama8b-qwen7b", {"num_processes": 1, "accelerate_config": None})
    plan = compare_plan(config, "paper-llama8b-qwen7b")
    assert plan.sharding.startswith("none: one process")
    assert any("more than a 80 GiB GPU" in n for n in plan.notes)


def test_train_dry_run_and_pure_bf16_full_fine_tuning_refused(tmp_path):
    done = run_cli("train", "--config", "ilr-tiny", "--dry-run", "--set", f"output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "launch:\n  ilr train --config ilr-tiny  (one process)" in done.stdout
    assert "LIVE PARAMETERS: 0" in done.stdout and "memory per GPU" in done.stdout
    bad = run_cli("train", "--config", "ilr-tiny", "--dry-run", "--set", "dtype=bfloat16")
    assert bad.returncode == 2
    assert "dtype=bfloat16 with full fine-tuning" in bad.stderr and "mixed_precision: bf16" in bad.stderr
