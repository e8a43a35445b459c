"""ILR co-training: m agents, each its own model and TRL ``GRPOTrainer``, fed by one joint rollout per step.

``train(config)`` is the whole run: validate (already done by ILRConfig), load questions, compute or
load difficulties and abilities, build one trainer per agent, run every trainer's ``train()`` once in its
own thread (they meet inside ``rollout_func``, see joint_rollout.py), checkpoint crash-safely
(checkpoint.py) and log. ``method: grpo`` runs the single-agent baseline instead (baselines/).

Which tokens receive gradient: only the final stage (the fusion answer in Idea3, the last round in
debate). Earlier turns enter as prompt context, exactly as the agent saw them; they are sampled once
per question (or per episode with ``sampling: full_episode``) and are not trained.

Outputs in ``output_dir``: ``config.yaml``, ``difficulty.json``, ``abilities.json``, ``metrics.jsonl``
(one line per step and agent: rewards raw/calibrated, accuracy, mode counts, calibration shift, step
time; plus TRL's own logs), ``rollouts.rank<r>.jsonl`` (per-question rewards and peer statistics),
``<agent>/`` (TRL output and HF checkpoints, TensorBoard logs under ``<agent>/runs``),
``tensorboard/ilr`` (ILR's own scalars) and ``checkpoints/manifest-<step>.json``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ilr_agents.checkpoint import (
    ManifestWriter,
    atomic_write_text,
    discard_uncommitted,
    latest_manifest,
)
from ilr_agents.config import ConfigError, ILRConfig

# Fields that define what a checkpoint is; a resumed run must not change them.
STRUCTURAL_FIELDS = (
    "models",
    "method",
    "protocol",
    "num_generations",
    "per_device_train_batch_size",
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_target_modules",
    "task",
    "train_split",
    "train_limit",
    "seed",
)


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    agents: list[str]
    metrics_path: Path
    resumed_from: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


# --- run folder state ------------------------------------------------------------------------------


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
    if manifest is None:  # killed before the first checkpoint: start over, cleanly
        discard_uncommitted(run_dir, agents, 0)
        for log in [run_dir / "metrics.jsonl", *run_dir.glob("rollouts.rank*.jsonl")]:
            _truncate_jsonl(log, 0)
        return None, None
    stored = manifest.data.get("config", {})
    for name in STRUCTURAL_FIELDS:
        if name in stored and stored[name] != getattr(config, name):
            raise ConfigError(
                f"--resume with {name}={getattr(config, name)!r}, but the checkpoint was made with "
                f"{stored[name]!r}: resume with the original value or use a new output_dir"
            )
    discard_uncommitted(run_dir, agents, manifest.step)
    for log in [run_dir / "metrics.jsonl", *run_dir.glob("rollouts.rank*.jsonl")]:
        _truncate_jsonl(log, manifest.step)
    return manifest.step, manifest.data


class RunLog:
    """metrics.jsonl + ILR's TensorBoard scalars + the progress bar (main process only)."""

    def __init__(self, config: ILRConfig, rank: int, is_main: bool, start_step: int) -> None:
        self.run_dir = Path(config.output_dir)
        self.rank = rank
        self.is_main = is_main
        self.lock = threading.Lock()
        self.history: list[dict[str, Any]] = []
        self.writer = None
        if is_main and "tensorboard" in config.report_to:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard" / "ilr"))
        self.bar = None
        if is_main and config.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=config.max_steps, initial=start_step, desc="ilr train", unit="step")

    def _append(self, path: Path, row: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=float) + "\n")

    def ilr_step(self, step: int, summary: dict[str, Any]) -> None:
        with self.lock:
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
        if not self.is_main:
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


def make_callback(agent: str, writer: ManifestWriter | None, log: RunLog | None) -> Any:
    """A TrainerCallback that commits checkpoints and forwards TRL's logs (public callback API only)."""
    from transformers import TrainerCallback

    class ILRCallback(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if writer is not None:
                writer.report_saved(agent, state.global_step)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if log is not None and logs:
                log.trl_log(agent, state.global_step, logs)

    return ILRCallback()


# --- building blocks -------------------------------------------------------------------------------


def quiet(trainer: Any) -> None:
    """Drop HF's stdout log printer: m trainers would interleave dicts; metrics.jsonl/TensorBoard keep them."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def use_cpu(config: ILRConfig) -> bool:
    import torch

    return bool(config.use_cpu) if config.use_cpu is not None else not torch.cuda.is_available()


def load_model(name: str, config: ILRConfig) -> tuple[Any, Any]:
    """A causal LM and its tokenizer from a zoo name, folder or hub id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ilr_agents.models import resolve_model

    path = resolve_model(name)
    dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def peft_config(config: ILRConfig) -> Any:
    if not config.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
        lora_dropout=0.0,
    )


def trainer_class(config: ILRConfig) -> Any:
    """The GRPOTrainer class every trainer (ILR agents and baseline alike) is built from."""
    from trl import GRPOTrainer

    if not config.shared_prompt_forward:
        return GRPOTrainer
    from ilr_agents.shared_prompt import SharedPromptGRPOTrainer

    return SharedPromptGRPOTrainer


def grpo_args(
    config: ILRConfig,
    output_dir: Path,
    *,
    reward_weights: list[float] | None = None,
    max_steps: int | None = None,
) -> Any:
    """The GRPOConfig every trainer (ILR agents and baseline alike) uses: same optimiser, n, steps."""
    from trl import GRPOConfig

    cpu = use_cpu(config)
    save_steps = config.save_steps or config.max_steps
    report = [r for r in config.report_to if r != "none"] or "none"
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=max_steps or config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        num_generations=config.num_generations,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        max_grad_norm=config.max_grad_norm,
        beta=config.beta,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        temperature=config.temperature,
        top_k=0,
        max_completion_length=config.max_completion_length,
        mask_truncated_completions=config.mask_truncated_completions,
        gradient_checkpointing=config.gradient_checkpointing,
        reward_weights=reward_weights,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        report_to=report,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=None,  # ILR prunes, only after a newer checkpoint is complete
        use_cpu=cpu,
        bf16=(not cpu) and config.dtype == "bfloat16",
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
    )


def ilr_reward(
    prompts: list[Any], completions: list[Any], ilr_reward: list[float], **kwargs: Any
) -> list[float]:
    """The calibrated reward the joint rollout computed, forwarded by TRL as an extra rollout key."""
    return list(ilr_reward)


def ilr_raw_reward(
    prompts: list[Any], completions: list[Any], ilr_raw_reward: list[float], **kwargs: Any
) -> list[float]:
    """The raw (uncalibrated) reward, weight 0: logged by TRL next to the calibrated one."""
    return list(ilr_raw_reward)


def make_raw_reward(config: ILRConfig) -> Any:
    """Raw reward on top of the env's correctness: a reward model and/or the strict format bonus."""
    from ilr_agents.rewards import FormatReward, RewardModelReward, lenient_correctness, question_column

    if config.reward == "correctness" and config.format_reward == 0 and not config.lenient_answer:
        return None
    rm = RewardModelReward(config.reward_model) if config.reward != "correctness" else None
    fmt = FormatReward(config.format_reward) if config.format_reward > 0 else None

    def raw(
        questions: list[Any], texts: list[str], truncated: list[bool], correctness: list[float]
    ) -> list[float]:
        out = [0.0] * len(texts) if config.reward == "reward_model" else list(correctness)
        if config.lenient_answer and config.reward != "reward_model":
            out = [
                lenient_correctness(q, t, cut) if c == 0 else c
                for q, t, cut, c in zip(questions, texts, truncated, out, strict=True)
            ]
        if rm is not None:
            weight = 1.0 if config.reward == "reward_model" else config.reward_model_weight
            scores = rm([], texts, question_json=[question_column(q) for q in questions])
            out = [o + weight * s for o, s in zip(out, scores, strict=True)]
        if fmt is not None:
            bonus = fmt([], texts, truncated=truncated)
            out = [o + b for o, b in zip(out, bonus, strict=True)]
        return out

    return raw


def load_training_questions(config: ILRConfig) -> tuple[list[Any], list[Any]]:
    import ilr_env
    from ilr_agents.training_data import dedupe_by_prompt

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


def _run_threads(trainers: dict[str, Any], joint: Any, resume_paths: dict[str, str | None]) -> None:
    errors: dict[str, BaseException] = {}

    def go(name: str) -> None:
        try:
            joint.wait_turn(name)
            trainers[name].train(resume_from_checkpoint=resume_paths.get(name))
        except BaseException as exc:  # noqa: BLE001
            errors[name] = exc
            joint.abort()
        finally:
            joint.pass_turn()

    threads = [
        threading.Thread(target=go, args=(name,), name=f"ilr-{name}", daemon=True) for name in trainers
    ]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
    except KeyboardInterrupt:
        joint.abort()
        raise
    if errors:
        from ilr_agents.joint_rollout import JointRolloutError

        primary = [e for e in errors.values() if not isinstance(e, JointRolloutError)] or list(
            errors.values()
        )
        raise primary[0]


# --- the run ---------------------------------------------------------------------------------------


def train(config: ILRConfig) -> TrainResult:
    """Run ILR co-training (or, with method=grpo, the single-agent baseline) as the config says."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if config.method == "grpo":
        from baselines.single_agent import train_single_agent

        return train_single_agent(config)

    import yaml

    import ilr_env
    from ilr_agents.joint_rollout import JointRollout, prompt_key
    from ilr_agents.preparation import prepare_difficulty_and_abilities
    from ilr_agents.training_data import build_dataset

    run_dir = Path(config.output_dir)
    agents = [f"agent_{i}" for i in range(config.num_agents)]
    resumed_from, payload = resolve_resume(config, agents)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_q, val_q = load_training_questions(config)
    if payload is not None:  # the checkpoint's own difficulties and abilities: same modes as before
        atomic_write_text(run_dir / "difficulty.json", json.dumps(payload["difficulty"]))
        atomic_write_text(run_dir / "abilities.json", json.dumps({"abilities": payload["abilities"]}))
    prep = prepare_difficulty_and_abilities(config, train_q, val_q)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    dataset = build_dataset(train_q, config.prompts)
    by_key = {prompt_key(row["prompt"]): q for row, q in zip(dataset, train_q, strict=True)}
    mode: Any = config.cooperation_probability if config.cooperation_probability is not None else config.mode
    slots = config.questions_per_step * (config.num_generations if config.sampling == "full_episode" else 1)
    envs = [
        ilr_env.make(
            config.task,
            num_agents=config.num_agents,
            protocol=config.protocol,
            debate_rounds=config.debate_rounds,
            mode=mode,
            questions=train_q,
            prompts=config.prompts or None,
            difficulty=prep.difficulty,
            abilities=prep.abilities,
            format_reward=0.0,
        )
        for _ in range(slots)
    ]

    writer = ManifestWriter(
        run_dir,
        agents,
        {
            "config": config.to_dict(),
            "difficulty": prep.difficulty,
            "abilities": prep.abilities,
        },
        keep=config.save_total_limit,
    )
    trainers: dict[str, Any] = {}
    joint = JointRollout(config, agents, envs, raw_reward=make_raw_reward(config))
    joint.question_key = by_key
    log: RunLog | None = None
    for agent, model_name in zip(agents, config.models, strict=True):
        model, tokenizer = load_model(model_name, config)
        trainers[agent] = trainer_class(config)(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[ilr_reward, ilr_raw_reward],
            args=grpo_args(config, run_dir / agent, reward_weights=[1.0, 0.0]),
            train_dataset=dataset,
            rollout_func=joint.rollout_func_for(agent),
            peft_config=peft_config(config),
        )
    first = trainers[agents[0]]
    is_main = first.accelerator.is_main_process
    writer.enabled = is_main
    log = RunLog(config, first.accelerator.process_index, is_main, resumed_from or 0)
    joint.on_step = log.ilr_step
    for agent, trainer in trainers.items():
        quiet(trainer)
        trainer.add_callback(make_callback(agent, writer, log))
    joint.bind(trainers)
    resume_paths = {
        a: str(run_dir / a / f"checkpoint-{resumed_from}") if resumed_from else None for a in agents
    }
    started = time.perf_counter()
    try:
        if resumed_from is None or resumed_from < config.max_steps:
            _run_threads(trainers, joint, resume_paths)
    finally:
        log.close()
    step = trainers[agents[0]].state.global_step or (resumed_from or 0)
    if is_main:
        atomic_write_text(
            run_dir / "train_summary.json",
            json.dumps(
                {"step": step, "seconds": time.perf_counter() - started, "resumed_from": resumed_from}
            ),
        )
    return TrainResult(run_dir, step, agents, run_dir / "metrics.jsonl", resumed_from, log.history)
