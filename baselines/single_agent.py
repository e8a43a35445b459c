"""Single-agent GRPO baseline: each model trained alone by TRL's ``GRPOTrainer``.

It is built from the same trainer class as ILR's agents (``training.trainer_class``: TRL's, or its subclass
whose loss reads each group's prompt once, an exact change), so speed and numerics are compared like for like.

Same questions (same dataset and seed, so the same order), same reward, same n, steps and optimiser
settings as ILR (both build their GRPOConfig with ``ilr_agents.training.grpo_args``); the difference is
only what ILR adds: TRL's own generation from the plain single-agent prompt (the one evaluation uses)
instead of a discussion, and no calibration. The run folder has ILR's layout (``agent_<i>/``,
``checkpoints/manifest-<step>.json``, ``metrics.jsonl``), so the same resume and evaluation code applies.

PPO: TRL 1.16 ships no ``PPOTrainer`` (neither in ``trl`` nor in ``trl.experimental``), so the paper's
PPO baseline is not offered here.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ilr_agents.checkpoint import ManifestWriter, atomic_write_text
from ilr_agents.config import ILRConfig


def baseline_reward_funcs(config: ILRConfig, eos_token_ids: list[int]) -> list[Any]:
    """The raw reward ILR uses, as TRL reward functions (correctness via ilr_env.grade, RM, format)."""
    from ilr_agents.rewards import build_reward

    return [
        build_reward(
            config.reward,
            format_bonus=config.format_reward,
            reward_model=config.reward_model,
            reward_model_weight=config.reward_model_weight,
            eos_token_ids=eos_token_ids,
            lenient_answer=config.lenient_answer,
        )
    ]


def _callback(agent: str, writer: ManifestWriter, metrics_path: Path, is_main: bool) -> Any:
    from transformers import TrainerCallback

    class BaselineCallback(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            writer.report_saved(agent, state.global_step)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if is_main and logs and "reward" in logs:
                with metrics_path.open("a", encoding="utf-8") as handle:
                    handle.write(
                        json.dumps(
                            {
                                "kind": "trl",
                                "step": state.global_step,
                                "agent": agent,
                                "reward_raw_mean": logs["reward"],
                                **logs,
                            },
                            default=float,
                        )
                        + "\n"
                    )

    return BaselineCallback()


def train_single_agent(config: ILRConfig) -> Any:
    """Train every listed model alone, one after the other, in ILR's run layout (``<output_dir>/agent_<i>``).

    A checkpoint step is committed once every model has saved it, so a crash while training the second
    model resumes both from the last step they share (the first model redoes its later steps).
    """
    import yaml

    from ilr_agents.training import (
        TrainResult,
        grpo_args,
        load_model,
        load_training_questions,
        peft_config,
        quiet,
        resolve_resume,
        trainer_class,
    )
    from ilr_agents.training_data import build_dataset

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    run_dir = Path(config.output_dir)
    agents = [f"agent_{i}" for i in range(config.num_agents)]
    resumed_from, _ = resolve_resume(config, agents)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    train_q, _ = load_training_questions(config)
    dataset = build_dataset(train_q, config.prompts)
    writer = ManifestWriter(run_dir, agents, {"config": config.to_dict()}, keep=config.save_total_limit)
    started = time.perf_counter()
    step = resumed_from or 0
    for agent, model_name in zip(agents, config.models, strict=True):
        model, tokenizer = load_model(model_name, config)
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        trainer = trainer_class(config)(
            model=model,
            processing_class=tokenizer,
            reward_funcs=baseline_reward_funcs(config, eos),
            args=grpo_args(config, run_dir / agent),
            train_dataset=dataset,
            peft_config=peft_config(config),
        )
        quiet(trainer)
        writer.enabled = trainer.accelerator.is_main_process
        trainer.add_callback(_callback(agent, writer, run_dir / "metrics.jsonl", writer.enabled))
        if resumed_from is None or resumed_from < config.max_steps:
            trainer.train(
                resume_from_checkpoint=str(run_dir / agent / f"checkpoint-{resumed_from}")
                if resumed_from
                else None
            )
        step = trainer.state.global_step or step
        del trainer, model
    if writer.enabled:
        atomic_write_text(
            run_dir / "train_summary.json",
            json.dumps(
                {"step": step, "seconds": time.perf_counter() - started, "resumed_from": resumed_from}
            ),
        )
    return TrainResult(run_dir, step, agents, run_dir / "metrics.jsonl", resumed_from)
