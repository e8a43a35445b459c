"""One agent's GRPOTrainer, the same class and arguments for every method."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from transformers.trainer_callback import PrinterCallback
from trl import GRPOTrainer

from ilr_agents.config import ILRConfig
from ilr_agents.fsdp import FinalWeightsOnly, fsdp_on_cpu
from ilr_agents.grpo_config import grpo_args
from ilr_agents.model_loading import peft_config
from ilr_agents.shared_prompt import SharedPromptGRPOTrainer
from ilr_agents.vllm_training import engine_defaults

# TRL warns once per trainer that ``rollout_func`` is experimental; ILR depends on it knowingly.
# TRL reads this when a trainer is built, so setting it here (before any trainer exists) is enough.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def build_trainer(
    config: ILRConfig,
    agent: str,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    *,
    reward_funcs: list[Callable[..., list[float]]],
    reward_weights: list[float] | None = None,
    rollout_func: Callable[..., dict[str, list[Any]]] | None = None,
) -> GRPOTrainer:
    """One agent's GRPOTrainer on ``dataset`` (``training_data.build_dataset``: the same questions in the
    same order for every agent and method).

    The class is TRL's, or with ``shared_prompt_forward`` its subclass whose loss reads each group's prompt
    once (an exact change), for every method alike, so speed and numerics compare like for like.
    """
    cls = SharedPromptGRPOTrainer if config.shared_prompt_forward else GRPOTrainer
    args = grpo_args(
        config,
        Path(config.output_dir) / agent,
        reward_weights=reward_weights,
        agent_index=config.agents.index(agent),
    )
    # generation_backend=vllm: TRL builds this trainer's engine here; an FSDP config shards on CPU too
    with engine_defaults(config), fsdp_on_cpu():
        trainer = cls(
            model=model,
            processing_class=tokenizer,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=dataset,
            rollout_func=rollout_func,
            peft_config=peft_config(config),
        )
    # m trainers would interleave HF's printed dicts; metrics.jsonl and TensorBoard keep them
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(FinalWeightsOnly(trainer))  # under FSDP: sharded checkpoints, weights-only last one
    return trainer
