"""`--dry-run`: a preset is validated and its resolved plan printed without loading any model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.commands.compare import CompareConfig
from experiments.pipeline.memory import GIB, estimate_memory
from experiments.pipeline.plan import (
    GPU_GIB,
    checkpoint_bytes,
    checkpoint_disk,
    compare_plan,
    training_shape,
)

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
    # the fields a GPU user checks before spending GPU-days (issue 19, i)
    assert "generation: vLLM, colocated: one engine per agent in every process, each reserving 0.16" in out
    assert "turn order alternating; n = 8 samples per question, 8 rows per process" in out
    assert "K = 8 questions per ranking, S = 3 passes" in out and "stops below a 50% parse rate" in out
    assert "optimiser: learning rate 1e-06" in out and "500 steps" in out
    assert "lengths: completion <= 1024 tokens, each discussion stage <= 512" in out
    assert "evaluation <= 2048 new tokens" in out
    assert re.search(r"checkpoints: .*every 50 steps, 2 kept.*disk up to [\d,.]+ GB per run", out)
    assert re.search(r"vLLM rollout engines \(one per agent, colocated\)\s+44\.8", out)  # 2 x 0.16 x 140
    assert "preparation peak per GPU" in out and "runtime (CUDA context + NCCL" in out


def test_plan_memory_is_the_estimate_of_the_largest_method():
    config = CompareConfig.from_yaml("paper-llama8b-qwen7b")
    plan = compare_plan(config, "paper-llama8b-qwen7b")
    ilr = config.training_config("ilr", 0)
    expected = estimate_memory(training_shape(ilr, config.eval_batch_size, 512 + config.eval_max_new_tokens))
    assert plan.memory == expected  # ILR's prompts carry the discussion: the larger of the two methods
    # with both agents' vLLM engines colocated, Group1 needs an H200, not an 80 GB card
    assert 80 < plan.memory.training / GIB < GPU_GIB
    assert [n for n in plan.notes if "more than a 80 GiB GPU: use H200-class GPUs (141 GB)" in n]
    assert [size for _, size in plan.models] == [8_030_261_248, 7_615_616_512]


@pytest.mark.parametrize("preset", ["paper-llama8b-qwen14b", "paper-qwen7b-qwen14b"])
def test_14b_paper_presets_shard_and_say_they_need_more_than_one_h200_node(preset):
    plan = compare_plan(CompareConfig.from_yaml(preset), preset)
    assert plan.sharding.startswith("FSDP2 over 8 processes")
    # the 14B model's colocated engine does not fit beside 8-way shards even on an H200
    assert plan.memory is not None and plan.memory.training / GIB > GPU_GIB
    assert any("more than an H200 (141 GB)" in n and "lora: true" in n for n in plan.notes)


def test_unsharded_paper_preset_is_flagged_as_not_fitting():
    config = CompareConfig.from_yaml("paper-llama8b-qwen7b", {"num_processes": 1, "accelerate_config": None})
    plan = compare_plan(config, "paper-llama8b-qwen7b")
    assert plan.sharding.startswith("none: one process")
    assert any("more than a 80 GiB GPU" in n for n in plan.notes)


def test_train_dry_run_and_pure_bf16_full_fine_tuning_refused(tmp_path):
    done = run_cli("train", "--config", "ilr-tiny", "--dry-run", "--set", f"output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "launch:\n  ilr train --config ilr-tiny  (one process)" in done.stdout
    assert "LIVE PARAMETERS: 0" in done.stdout and "memory per process" in done.stdout  # zoo: CPU models
    bad = run_cli("train", "--config", "ilr-tiny", "--dry-run", "--set", "dtype=bfloat16")
    assert bad.returncode == 2
    assert "dtype=bfloat16 with full fine-tuning" in bad.stderr and "mixed_precision: bf16" in bad.stderr


def test_alternating_turns_put_the_earlier_fusion_answer_in_the_later_prompt():
    config = CompareConfig.from_yaml("paper-llama8b-qwen7b")
    ilr = config.training_config("ilr", 0)
    alternating = training_shape(ilr)
    simultaneous = training_shape(ilr.replace(turn_order="simultaneous"))
    assert alternating.prompt_tokens - simultaneous.prompt_tokens == ilr.max_completion_length
    grpo = training_shape(config.training_config("grpo", 0))
    assert grpo.prompt_tokens == 512 and len(grpo.engines) == 1  # the baseline: one model, one engine
    assert estimate_memory(alternating).activations > estimate_memory(simultaneous).activations


def test_vllm_engines_preparation_and_runtime_are_in_the_estimate():
    ilr = CompareConfig.from_yaml("paper-llama8b-qwen7b").training_config("ilr", 0)
    shape = training_shape(ilr)
    mem = estimate_memory(shape)
    assert len(shape.engines) == 2 and shape.engine_reserved == pytest.approx(0.16 * GPU_GIB * GIB)
    assert mem.rollout_engines == pytest.approx(2 * 0.16 * GPU_GIB * GIB)  # each reserves its share
    assert mem.rollout_kv_cache == 0  # vLLM samples: the trainer keeps no generation cache
    assert mem.runtime == GIB  # CUDA context + NCCL buffers
    llama = shape.agents[0]
    assert mem.preparation > 4 * llama.parameters  # fp32 ranking model (the larger) and its cache
    assert mem.preparation_peak == mem.weights + mem.preparation + mem.runtime
    hf = estimate_memory(training_shape(ilr.replace(generation_backend="transformers")))
    assert hf.rollout_engines == 0 and hf.rollout_kv_cache > 0
    assert mem.training - hf.training == pytest.approx(
        mem.rollout_engines - max(hf.rollout_kv_cache - hf.activations - hf.logits, 0), rel=1e-9
    )


def test_checkpoint_disk_counts_kept_sharded_checkpoints_and_final_weights():
    ilr = CompareConfig.from_yaml("paper-llama8b-qwen7b").training_config("ilr", 0)
    params = 8_030_261_248 + 7_615_616_512
    intermediate, final = checkpoint_bytes(ilr)
    assert (intermediate, final) == (12 * params, 4 * params)  # fp32 weights + AdamW m, v; fp32 weights
    # 10 saves, 2 kept, a third while the next is written, then the final weights
    assert checkpoint_disk(ilr) == 3 * intermediate + final
    assert checkpoint_disk(ilr.replace(save_steps=0)) == final
    assert checkpoint_disk(ilr.replace(max_steps=50)) == intermediate + final
    lora = ilr.replace(lora=True)
    assert checkpoint_bytes(lora)[0] < intermediate / 100
