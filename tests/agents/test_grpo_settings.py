"""``grpo:`` passes any TRL GRPOConfig setting through to the trainers, checked by TRL's own GRPOConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch

from experiments.pipeline.methods import train
from ilr_agents import grpo_config
from ilr_agents.config import ConfigError, ILRConfig


def test_a_setting_ilr_never_mirrors_reaches_the_grpo_config(tmp_path: Path) -> None:
    cfg = ILRConfig(grpo={"weight_decay": 0.25, "adam_beta2": 0.9, "learning_rate": 3e-4})
    args = grpo_config.grpo_args(cfg, tmp_path / "agent_0")
    assert (args.weight_decay, args.adam_beta2, args.learning_rate) == (0.25, 0.9, 3e-4)
    # ILR's defaults where TRL's differ, and what the run owns
    assert (args.loss_type, args.mask_truncated_completions, args.gradient_checkpointing) == (
        "grpo",
        True,
        False,
    )
    assert args.num_generations == cfg.num_generations and args.max_steps == cfg.max_steps
    assert args.output_dir == str(tmp_path / "agent_0") and args.top_k == 0


@pytest.mark.parametrize(
    ("grpo", "message"),
    [
        ({"weight_decai": 0.1}, "grpo.weight_decai is not a GRPOConfig field: did you mean 'weight_decay'"),
        ({"num_iterations": "2"}, "grpo.num_iterations='2' has the wrong type: expected int"),
        (
            {"steps_per_generation": 2, "generation_batch_size": 8},
            "TRL's GRPOConfig refused these settings: 'generation_batch_size' and 'steps_per_generation'",
        ),
    ],
)
def test_settings_trl_refuses_fail_before_anything_loads(grpo: dict, message: str, tmp_path: Path) -> None:
    cfg = ILRConfig(grpo=grpo, output_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert message in str(info.value)
    assert not (tmp_path / "run").exists()  # failed before the run folder or any model


@pytest.mark.parametrize("method", ["ilr", "grpo"])
def test_a_new_setting_reaches_every_trainer(method: str, tmp_path: Path) -> None:
    """The arguments each trained agent's TRL trainer ran with (saved with its checkpoint) hold the value."""
    cfg = ILRConfig(
        models=["tiny", "tiny-llama"] if method == "ilr" else ["tiny"],
        method=method,
        task="gsm8k",
        train_limit=2,
        validation_limit=2,
        mode="cooperate",  # no difficulty pass needed
        num_generations=2,
        per_device_train_batch_size=2,
        max_steps=1,
        max_completion_length=4,
        max_stage_tokens=4,
        grpo={"weight_decay": 0.25, "adam_beta2": 0.9},
        report_to=["none"],
        progress=False,
        output_dir=str(tmp_path / "run"),
    )
    result = train(cfg)
    for agent in result.agents:
        saved = torch.load(
            tmp_path / "run" / agent / "checkpoint-1" / "training_args.bin", weights_only=False
        )
        assert (saved.weight_decay, saved.adam_beta2) == (0.25, 0.9)
