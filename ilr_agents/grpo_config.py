"""The one GRPOConfig every trainer (ILR agents and the baseline alike) is built with."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig

from ilr_agents.config import ILRConfig
from ilr_agents.config_types import ConfigError, describe, type_ok
from ilr_agents.vllm_training import grpo_vllm_args


def build_grpo_config(cls: type, settings: dict[str, Any], **run: Any) -> Any:
    """TRL's GRPOConfig (``cls``) from ``grpo:`` plus the fields
    the run sets; an unknown name, a wrong type or a value TRL refuses becomes a ConfigError naming it."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001  (an annotation TRL's module cannot resolve: skip the type check)
        hints = {}
    for key, value in settings.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"see {cls.__name__}'s fields in TRL's docs"
            raise ConfigError(f"grpo.{key} is not a {cls.__name__} field: {hint}")
        if key in hints and not type_ok(value, hints[key]):
            help_text = fields[key].metadata.get("help", "").split(". ")[0]
            raise ConfigError(
                f"grpo.{key}={value!r} has the wrong type: expected {describe(hints[key])} ({help_text})"
            )
    try:
        return cls(**settings, **run)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"grpo: TRL's {cls.__name__} refused these settings: {exc}") from exc


def use_cpu(config: ILRConfig) -> bool:
    return bool(config.use_cpu) if config.use_cpu is not None else not torch.cuda.is_available()


def grpo_args(
    config: ILRConfig, output_dir: Path, *, reward_weights: list[float] | None = None, agent_index: int = 0
) -> GRPOConfig:
    """The one GRPOConfig every trainer (ILR agents and baseline alike) uses: the config's ``grpo:``
    settings (any GRPOConfig field, passed through) plus the fields the run sets itself."""
    cpu = use_cpu(config)
    return build_grpo_config(
        GRPOConfig,
        config.grpo,
        output_dir=str(output_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        num_generations=config.num_generations,
        temperature=config.temperature,
        top_k=0,
        max_completion_length=config.max_completion_length,
        reward_weights=reward_weights,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        report_to=[r for r in config.report_to if r != "none"] or "none",
        save_strategy="steps",
        save_steps=config.save_steps or config.max_steps,
        save_total_limit=None,  # the run prunes, only after a newer checkpoint is complete
        use_cpu=cpu,
        # bf16 autocast over the stored (fp32, for full fine-tuning) weights; it runs on CPU too
        bf16=config.mixed_precision == "bf16",
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        **grpo_vllm_args(config, agent_index),
    )


def check_grpo_args(config: ILRConfig) -> None:
    """Build the GRPOConfig once, so a ``grpo:`` setting TRL refuses fails before any model or data loads."""
    grpo_args(config, Path(config.output_dir))
