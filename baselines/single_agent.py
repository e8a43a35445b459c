"""Single-agent GRPO baseline: each model trained alone by a plain TRL ``GRPOTrainer``.

Same questions (same dataset and seed, so the same order), same reward, same n, steps and optimiser
settings as ILR (both build their GRPOConfig with ``ilr_agents.training.grpo_args``); the difference is
only what ILR adds: TRL's own generation from the plain single-agent prompt (the one evaluation uses)
instead of a discussion, and no calibration. Each model gets its own sub-run ``<output_dir>/single_<i>``
with the same layout and crash-safe checkpoints as an ILR run.

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

POLICY = "policy"


def baseline_reward_funcs(config: ILRConfig, eos_token_ids: list[int]) -> list[Any]:
    """The raw reward ILR uses, as TRL reward functions (correctness via ilr_env.grade, RM, format)."""
    from ilr_agents.rewards import build_reward

    return [build_reward(config.reward, format_bonus=config.format_reward, reward_model=config.reward_model,
                         reward_model_weight=config.reward_model_weight, eos_token_ids=eos_token_ids)]


def _callback(writer: ManifestWriter, metrics_path: Path, is_main: bool) -> Any:
    from transformers import TrainerCallback

    class BaselineCallback(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            writer.report_saved(POLICY, state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if is_main and logs and "reward" in logs:
                with metrics_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"kind": "trl", "step": state.global_step, "agent": POLICY,
                                             "reward_raw_mean": logs["reward"], **logs}, default=float) + "\n")

    return BaselineCallback()


def train_one(config: ILRConfig, model_name: str, run_dir: Path) -> Any:
    """One model, one plain GRPOTrainer, crash-safe checkpoints and resume like an ILR run."""
    import yaml
    from trl import GRPOTrainer

    from ilr_agents.training import (
        TrainResult,
        grpo_args,
        load_model,
        load_training_questions,
        peft_config,
        quiet,
        resolve_resume,
    )
    from ilr_agents.training_data import build_dataset

    sub = config.replace(models=[model_name], output_dir=str(run_dir))
    resumed_from, _ = resolve_resume(sub, [POLICY])
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(sub.to_dict(), sort_keys=False))
    train_q, _ = load_training_questions(sub)
    dataset = build_dataset(train_q)
    model, tokenizer = load_model(model_name, sub)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=baseline_reward_funcs(sub, eos),
                          args=grpo_args(sub, run_dir / POLICY), train_dataset=dataset,
                          peft_config=peft_config(sub))
    quiet(trainer)
    is_main = trainer.accelerator.is_main_process
    writer = ManifestWriter(run_dir, [POLICY], {"config": sub.to_dict()}, keep=sub.save_total_limit,
                            enabled=is_main)
    trainer.add_callback(_callback(writer, run_dir / "metrics.jsonl", is_main))
    started = time.perf_counter()
    if resumed_from is None or resumed_from < sub.max_steps:
        trainer.train(resume_from_checkpoint=str(run_dir / POLICY / f"checkpoint-{resumed_from}")
                      if resumed_from else None)
    step = trainer.state.global_step or (resumed_from or 0)
    if is_main:
        atomic_write_text(run_dir / "train_summary.json", json.dumps({
            "step": step, "seconds": time.perf_counter() - started, "resumed_from": resumed_from}))
    return TrainResult(run_dir, step, [POLICY], run_dir / "metrics.jsonl", resumed_from)


def train_single_agent(config: ILRConfig) -> Any:
    """Train every listed model alone (sub-runs ``single_<i>``); returns the last result."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    result = None
    for index, model_name in enumerate(config.models):
        result = train_one(config, model_name, Path(config.output_dir) / f"single_{index}")
    return result
