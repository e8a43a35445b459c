"""What every GRPO training run here is built from, whatever the method: ILR (``training.py``) and the
single-agent baseline (``baselines/single_agent.py``) both assemble their runs from these parts, so the two
share one model loader, one GRPOConfig, one run folder layout, one resume rule and one log.

A run folder (``output_dir``) holds ``config.yaml``, ``metrics.jsonl`` (one line per TRL log, plus ILR's
per-step rows), ``<agent>/`` (TRL output and HF checkpoints), ``checkpoints/manifest-<step>.json`` (a step
is committed once every agent saved it, see checkpoint.py) and ``train_summary.json``.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from datasets import Dataset
from peft import LoraConfig
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

import ilr_env
from ilr_agents.checkpoint import ManifestWriter, atomic_write_text, discard_uncommitted, latest_manifest
from ilr_agents.config import ConfigError, ILRConfig, build_grpo_config
from ilr_agents.models import resolve_model
from ilr_agents.shared_prompt import SharedPromptGRPOTrainer
from ilr_agents.training_data import dedupe_by_prompt
from ilr_agents.vllm_training import check_generation_backend, engine_defaults, grpo_vllm_args

# TRL warns once per trainer that ``rollout_func`` is experimental; ILR depends on it knowingly.
# TRL reads this when a trainer is built, so setting it here (before any trainer exists) is enough.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@dataclass
class TrainResult:
    """What a finished (or resumed-and-finished) run of any method hands back."""

    output_dir: Path
    step: int
    agents: list[str]
    metrics_path: Path
    resumed_from: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


# --- the run folder --------------------------------------------------------------------------------


def agent_names(config: ILRConfig) -> list[str]:
    return [f"agent_{i}" for i in range(config.num_agents)]


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Drop lines of steps that will be redone after a resume (they belong to an uncommitted future)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= last_step:
                kept.append(line)
        except (ValueError, AttributeError):
            continue  # a torn last line from a crash
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def resolve_resume(config: ILRConfig, agents: list[str]) -> tuple[int | None, dict[str, Any] | None]:
    """(committed step, manifest payload) to resume from, after cleaning uncommitted leftovers."""
    run_dir = Path(config.output_dir)
    manifest = latest_manifest(run_dir)
    if not config.resume:
        if manifest is not None:
            raise ConfigError(
                f"output_dir={config.output_dir!r} already holds a run (checkpoint at step "
                f"{manifest.step}): pass --resume to continue it or choose a new output_dir"
            )
        return None, None
    step = 0 if manifest is None else manifest.step  # killed before the first checkpoint: start over
    if manifest is not None:
        stored = manifest.data.get("config", {})
        for name in config.structural_fields():
            if name in stored and stored[name] != getattr(config, name):
                raise ConfigError(
                    f"--resume with {name}={getattr(config, name)!r}, but the checkpoint was made with "
                    f"{stored[name]!r}: resume with the original value or use a new output_dir"
                )
    discard_uncommitted(run_dir, agents, step)
    for log in [run_dir / "metrics.jsonl", *run_dir.glob("rollouts.rank*.jsonl")]:
        _truncate_jsonl(log, step)
    return (None, None) if manifest is None else (manifest.step, manifest.data)


class RunFolder:
    """One run's folder from start to summary: resume state, ``config.yaml``, manifests, the final summary."""

    def __init__(self, config: ILRConfig) -> None:
        check_generation_backend(config)  # a vLLM set-up that cannot work fails here, before any model loads
        check_grpo_args(config)
        self.config = config
        self.path = Path(config.output_dir)
        self.agents = agent_names(config)
        self.resumed_from, self.resume_payload = resolve_resume(config, self.agents)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        self.started = time.perf_counter()

    @property
    def done(self) -> bool:
        """Resumed from the last step: nothing left to train."""
        return self.resumed_from is not None and self.resumed_from >= self.config.max_steps

    def manifest_writer(self, **payload: Any) -> ManifestWriter:
        """Commits a step once every agent saved it; ``payload`` is stored with the config per manifest."""
        return ManifestWriter(
            self.path,
            self.agents,
            {"config": self.config.to_dict(), **payload},
            keep=self.config.save_total_limit,
        )

    def resume_checkpoint(self, agent: str) -> str | None:
        """The HF checkpoint ``agent``'s trainer continues from, or None for a fresh start."""
        return str(self.path / agent / f"checkpoint-{self.resumed_from}") if self.resumed_from else None

    def finish(self, step: int, *, is_main: bool, history: list[dict[str, Any]] | None = None) -> TrainResult:
        step = step or (self.resumed_from or 0)
        if is_main:
            summary = {
                "step": step,
                "seconds": time.perf_counter() - self.started,
                "resumed_from": self.resumed_from,
                "world_size": int(os.environ.get("WORLD_SIZE", "1")),  # processes (the report's token counts)
            }
            atomic_write_text(self.path / "train_summary.json", json.dumps(summary))
        return TrainResult(
            self.path, step, self.agents, self.path / "metrics.jsonl", self.resumed_from, history or []
        )


class RunLog:
    """metrics.jsonl, plus for ILR its per-step rows, TensorBoard scalars and progress bar (main process)."""

    def __init__(self, config: ILRConfig, rank: int, is_main: bool, start_step: int) -> None:
        self.config = config
        self.run_dir = Path(config.output_dir)
        self.rank = rank
        self.is_main = is_main
        self.start_step = start_step
        self.lock = threading.Lock()
        self.history: list[dict[str, Any]] = []
        self.writer: Any = None
        self.bar: Any = None

    def _open_ilr_outputs(self) -> None:
        """TensorBoard and the bar exist for ILR's own steps only (TRL reports its own logs)."""
        if self.is_main and "tensorboard" in self.config.report_to and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # optional: only runs that ask for it

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard" / "ilr"))
        if self.is_main and self.config.progress and self.bar is None:
            self.bar = tqdm(
                total=self.config.max_steps, initial=self.start_step, desc="ilr train", unit="step"
            )

    def _append(self, path: Path, row: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=float) + "\n")

    def ilr_step(self, step: int, summary: dict[str, Any]) -> None:
        with self.lock:
            self._open_ilr_outputs()
            self._append(
                self.run_dir / f"rollouts.rank{self.rank}.jsonl",
                {"step": step, "records": summary["records"]},
            )
            if not self.is_main:
                return
            for agent, row in summary["agents"].items():
                line = {
                    "kind": "ilr",
                    "step": step,
                    "agent": agent,
                    "step_time": summary["step_time"],
                    "shift": summary["shift"],
                    **row,
                }
                self.history.append(line)
                self._append(self.run_dir / "metrics.jsonl", line)
                if self.writer is not None:
                    for key in ("reward_raw_mean", "reward_cal_mean", "accuracy", "truncated_fraction"):
                        self.writer.add_scalar(f"{agent}/{key}", row[key], step)
                    for mode, count in row["mode_counts"].items():
                        self.writer.add_scalar(f"{agent}/mode_{mode}", count, step)
                    for mode, acc in row["accuracy_by_mode"].items():
                        self.writer.add_scalar(f"{agent}/accuracy_{mode}", acc, step)
            if self.writer is not None:
                for key, value in summary["shift"].items():
                    self.writer.add_scalar(f"calibration/{key}", value, step)
                if summary["step_time"] is not None:
                    self.writer.add_scalar("time/step_seconds", summary["step_time"], step)
            if self.bar is not None:
                rewards = " ".join(f"{a}={r['reward_raw_mean']:.2f}" for a, r in summary["agents"].items())
                self.bar.set_postfix_str(f"reward {rewards}")
                self.bar.update(1)

    def trl_log(self, agent: str, step: int, logs: dict[str, Any]) -> None:
        """One TRL training log (those with a reward; TRL's end-of-run totals are left to train_summary)."""
        if not self.is_main or "reward" not in logs:
            return
        with self.lock:
            self._append(
                self.run_dir / "metrics.jsonl", {"kind": "trl", "step": step, "agent": agent, **logs}
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class RunCallback(TrainerCallback):
    """Commits checkpoints to the manifest and forwards TRL's logs to metrics.jsonl (public callback API)."""

    def __init__(self, agent: str, writer: ManifestWriter, log: RunLog) -> None:
        self.agent, self.writer, self.log = agent, writer, log

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.writer.report_saved(self.agent, state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if logs:
            self.log.trl_log(self.agent, state.global_step, logs)


# --- data, models and trainers ---------------------------------------------------------------------


def load_training_questions(config: ILRConfig) -> tuple[list[Any], list[Any]]:
    """(distinct training questions, validation questions) as the config names them."""
    train = dedupe_by_prompt(
        ilr_env.load_questions(
            config.task, config.train_split, limit=config.train_limit, **config.task_kwargs
        )
    )
    if len(train) < config.questions_per_step:
        raise ConfigError(
            f"task {config.task!r} split {config.train_split!r} gave {len(train)} distinct questions; "
            f"need at least questions_per_step={config.questions_per_step}"
        )
    val_task = config.validation_task or config.task
    val_kwargs = config.task_kwargs if val_task == config.task else {}
    validation = ilr_env.load_questions(
        val_task, config.validation_split, limit=config.validation_limit, **val_kwargs
    )
    return train, validation


def use_cpu(config: ILRConfig) -> bool:
    return bool(config.use_cpu) if config.use_cpu is not None else not torch.cuda.is_available()


def load_model(name: str, config: ILRConfig) -> tuple[Any, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a zoo name, folder or hub id."""
    path = resolve_model(name)
    dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def peft_config(config: ILRConfig) -> LoraConfig | None:
    if not config.lora:
        return None
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
        lora_dropout=0.0,
    )


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


def wrap_this_model_next(trainer: GRPOTrainer) -> None:
    """Let FSDP pick the layers to shard from the model ``trainer`` is about to wrap.

    accelerate keeps one FSDP plugin per process and, on the first model it wraps, stores that model's
    layer classes in it (e.g. Qwen2DecoderLayer); ILR wraps one model per agent, of different families,
    so the next agent's wrap (a Llama) would look for Qwen2 layers and fail. Call before each ``train()``.
    """
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if plugin is None:
        return
    plugin.transformer_cls_names_to_wrap = None
    if isinstance(plugin.auto_wrap_policy, functools.partial):
        plugin.auto_wrap_policy = plugin.auto_wrap_policy.func


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
        agent_index=agent_names(config).index(agent),
    )
    with engine_defaults(config):  # generation_backend=vllm: TRL builds this trainer's engine here
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
    return trainer


def attach_run(
    trainer: GRPOTrainer, agent: str, run: RunFolder, writer: ManifestWriter, log: RunLog | None = None
) -> RunLog:
    """Wire a built trainer to its run: checkpoints commit through ``writer``, logs go to ``log``.

    The first trainer of a run decides which process writes (the main one); pass its log to the others.
    """
    writer.enabled = trainer.accelerator.is_main_process
    if log is None:
        log = RunLog(run.config, trainer.accelerator.process_index, writer.enabled, run.resumed_from or 0)
    trainer.add_callback(RunCallback(agent, writer, log))
    return log
