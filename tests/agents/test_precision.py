"""Real mixed precision: full fine-tuning keeps fp32 master weights and computes in bf16, so a paper-sized
learning rate still moves the weights; pure-bf16 full fine-tuning is refused (its updates are lost)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.commands.compare import CompareConfig
from ilr_agents.config import ConfigError, ILRConfig

pytest.importorskip("trl")


def test_one_step_at_paper_precision_changes_the_weights(tmp_path: Path):
    from safetensors.numpy import load_file

    from baselines.single_agent import train_single_agent
    from ilr_agents.grpo_config import grpo_args
    from ilr_agents.models import resolve_model
    from ilr_agents.rewards import build_tiny_reward_model

    paper = CompareConfig.from_yaml("paper-llama8b-qwen7b").training_config("grpo", 0)
    precision = {"dtype": paper.dtype, "mixed_precision": paper.mixed_precision, "lora": paper.lora}
    assert precision == {"dtype": "float32", "mixed_precision": "bf16", "lora": False}
    config = ILRConfig(
        models=["tiny"],
        method="grpo",
        task="gsm8k",
        train_limit=2,
        validation_limit=2,
        num_generations=2,
        per_device_train_batch_size=2,
        max_steps=1,
        max_completion_length=8,
        grpo={"learning_rate": paper.grpo["learning_rate"], "mask_truncated_completions": False},
        reward="reward_model",
        reward_model=build_tiny_reward_model(str(tmp_path / "rm")),
        report_to=["none"],
        progress=False,
        use_cpu=True,
        output_dir=str(tmp_path / "run"),
        **precision,
    )
    assert config.grpo["learning_rate"] == 1e-6
    args = grpo_args(config, tmp_path)
    assert args.bf16 and args.mixed_precision == "bf16"  # the trainer's accelerator autocasts to bf16
    train_single_agent(config)
    key = "model.layers.0.mlp.down_proj.weight"
    before = load_file(str(Path(resolve_model("tiny")) / "model.safetensors"))[key]
    after = load_file(str(tmp_path / "run" / "agent_0" / "checkpoint-1" / "model.safetensors"))[key]
    assert after.dtype == np.float32  # fp32 master weights
    assert np.mean(after != before) > 0.9  # a 1e-6 step survives in fp32 (in bf16 it mostly rounds away)


def test_pure_bf16_full_fine_tuning_is_refused_with_the_fix():
    for dtype in ("bfloat16", "float16"):
        with pytest.raises(ConfigError, match=rf"dtype={dtype} with full fine-tuning.*mixed_precision: bf16"):
            ILRConfig(dtype=dtype)
    assert ILRConfig(dtype="bfloat16", lora=True).lora  # LoRA keeps its bf16 base: adapters are fp32
