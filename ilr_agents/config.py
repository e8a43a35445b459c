"""The ILR training configuration: one dataclass, validated completely before any model or data loads.

A training run costs minutes to days, so every mistake a config can hold (an unknown key, a wrong type,
an impossible value such as ``num_generations < 2``) must surface at start, naming the field and the fix.
Field help lives in ``metadata["help"]`` (TRL/HF style) so ``ilr train --help`` can show it.
This module imports neither torch nor transformers.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ilr_agents.config_files import apply_overrides, read_yaml
from ilr_agents.config_types import ConfigError, describe, type_ok
from ilr_env import agent_names

STAGE_NAMES = ("share", "analyse", "fuse")


# TRL GRPOConfig settings a run starts from (``grpo:`` in a config is merged over them). They differ from
# TRL's own defaults where ILR needs it: loss_type grpo is the paper's per-sequence mean; beta 0 needs no
# reference model; truncated answers are masked (they invite a length hack); gradient checkpointing is off
# (faster on CPU; TRL turns it on).
GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-5,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "max_grad_norm": 1.0,
    "beta": 0.0,
    "loss_type": "grpo",
    "scale_rewards": "group",
    "mask_truncated_completions": True,
    "gradient_checkpointing": False,
}

# GRPOConfig fields the run sets itself, with the reason; ``grpo:`` may not set them.
GRPO_RUN_OWNED: dict[str, str] = {
    "save_strategy": "checkpoints commit through the run's manifest every save_steps",
    "reward_weights": "the method's reward functions set their own weights",
    "data_seed": "it follows seed",
    "bf16": "it follows mixed_precision",
    "fp16": "it follows mixed_precision",
    "disable_tqdm": "the run shows one progress bar (progress)",
    "top_k": "every method samples with temperature alone, so they sample alike",
}

# Keys of earlier versions and where their setting lives now.
MOVED_KEYS: dict[str, str] = {
    **{name: f"grpo.{name}" for name in GRPO_DEFAULTS},
    "cooperation_probability": "mode",
}


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A field with its help text (and flags such as ``structural=True``) in ``metadata``, TRL-style."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class ILRConfig:
    """Everything one ILR (or single-agent GRPO baseline) training run needs."""

    # --- agents and method -------------------------------------------------------------------------
    models: list[str] = _f(  # noqa: RUF009
        ["tiny", "tiny-llama"],
        "one model per agent: a zoo name (tiny, tiny-llama, "
        "smollm2-135m), a local folder or a hub id; m = len(models); families may differ",
        structural=True,
    )
    method: Literal["ilr", "grpo"] = _f(
        "ilr",
        "ilr = co-training with discussion; grpo = single-agent GRPO "
        "baseline, each listed model trained alone with the plain prompt",
        structural=True,
    )
    protocol: Literal["idea3", "debate"] = _f(
        "idea3", "discussion protocol (ILR: idea3; debate for comparison)", structural=True
    )
    debate_rounds: int = _f(2, "rounds for protocol=debate")
    turn_order: Literal["simultaneous", "alternating"] = _f(
        "simultaneous",
        "idea3 turns: simultaneous (every agent writes each stage at once) or alternating (paper figure: "
        "A, B, A, B, A, B; an agent also sees what was already written in its stage)",
    )
    first_speaker: Literal["fixed", "rotate"] = _f(
        "fixed",
        "who opens each stage with alternating turns: fixed = agent_0 always; rotate = drawn per episode "
        "from the env's seeded generator, each agent equally often",
    )
    mode: Literal["dynamic", "cooperate", "compete"] | float = _f(
        "dynamic",
        "dynamic = cooperate when P(q,i) < 0.5 (paper); cooperate or compete = that mode for every "
        "question; a number p in [0, 1] = cooperate with probability p (the paper's ablations: 0, 0.5, 1)",
    )
    sampling: Literal["fusion", "full_episode"] = _f(
        "fusion",
        "fusion: sharing and analysis once, the final answer sampled n times (default); "
        "full_episode: the whole discussion sampled n times",
    )
    rollout_batching: Literal["step", "question"] = _f(
        "step",
        "step: one batched generate call per agent and stage for all of a step's questions (fast); "
        "question: one call per question, seeded by (seed, step, question) so that a multi-process run "
        "samples exactly what a single-process run samples (slower; for reproducibility checks)",
    )
    train_stages: list[str] = _f(  # noqa: RUF009
        ["final"],
        "stages whose tokens receive gradient: ['final'] (= 'fuse' for "
        "idea3, the last round for debate); earlier turns are prompt context",
    )
    # --- data and difficulty -----------------------------------------------------------------------
    task: str = _f("gsm8k", "ilr_env task for training questions", structural=True)
    task_kwargs: dict[str, Any] = _f(  # noqa: RUF009
        {},
        "options of the task's generator or loader, e.g. reasoning-gym "
        "knobs {min_terms: 2, max_terms: 2, max_digits: 1}; also used for validation",
    )
    train_split: str = _f("train", "split of the training task", structural=True)
    train_limit: int | None = _f(None, "use only the first N training questions", structural=True)
    validation_task: str | None = _f(
        None, "task for the held-out validation set (difficulty/ability fit); default: the training task"
    )
    validation_split: str = _f("test", "split of validation_task")
    validation_limit: int = _f(64, "validation questions used to fit abilities (paper: 1000)")
    difficulty: str = _f(
        "pass_rate",
        "D_q source: 'level' (dataset level field), 'pass_rate' (base models' pass rates), or a JSON "
        "file {question_id: D_q}, e.g. the LLM self-ranking `ilr difficulty` writes",
    )
    self_rank: dict[str, Any] = _f(  # noqa: RUF009
        {},
        "settings of difficulty: self_rank (ilr_agents.self_ranking.SelfRankSettings): batch_size K, "
        "passes S, seed, max_retries, max_new_tokens, shared (false = each agent's own D_q^i)",
    )
    abilities: str | list[float] = _f(  # noqa: RUF009
        "rasch", "'rasch' (fit on validation) or a JSON file / list, one per agent"
    )
    prompts: dict[str, Any] = _f(  # noqa: RUF009
        {},
        "prompt-template overrides merged into ilr_env's prompts.yaml (same keys), "
        "used for training, the baseline and evaluation alike, e.g. {answer_format: "
        "{math: 'Put your final answer in \\boxed{}.'}}",
    )
    sandbox: Literal["auto", "require_bwrap"] = _f(
        "auto",
        "code grading: auto = bubblewrap, else the weak rlimits fallback with a warning; require_bwrap = "
        "that fallback is an error (training on a code task always requires bubblewrap; see SECURITY.md)",
    )
    # --- rewards -----------------------------------------------------------------------------------
    reward: Literal["correctness", "reward_model", "graded"] = _f(
        "correctness",
        "raw reward: correctness (0/1), reward_model (sequence-classification scores), or "
        "graded (correctness + reward_model_weight * reward model)",
    )
    reward_model: str | None = _f(
        None, "sequence-classification model id or folder (reward=reward_model|graded)"
    )
    reward_model_weight: float = _f(0.5, "weight of the reward-model score for reward=graded")
    lenient_answer: bool = _f(
        False,
        "training reward only: when a reply states no answer (no box, no 'the "
        "answer is'), grade the last number of an untruncated reply; evaluation stays strict",
    )
    format_reward: float = _f(0.0, "bonus for a non-empty \\boxed{} in an untruncated reply (0 = off)")
    calibration: bool = _f(True, "apply Perception Calibration (Eq. 5); false for the ablation")
    calibration_eps: float = _f(1e-8, "denominator floor for a peer with constant rewards")
    # --- GRPO -------------------------------------------------------------------------------------
    grpo: dict[str, Any] = _f(  # noqa: RUF009
        GRPO_DEFAULTS,
        "TRL GRPOConfig settings passed through unchanged (any GRPOConfig field, e.g. {learning_rate: "
        "1e-6, weight_decay: 0.01}); merged over these defaults and checked by building a GRPOConfig. "
        "Fields ILR reads itself stay top level (num_generations, max_steps, temperature, ...)",
    )
    num_generations: int = _f(4, "n: samples per question and agent (the GRPO group), >= 2", structural=True)
    per_device_train_batch_size: int = _f(
        8,
        "samples per device per step; a multiple of num_generations so "
        "every question's whole group sits on one process",
        structural=True,
    )
    max_steps: int = _f(10, "optimizer steps")
    temperature: float = _f(1.0, "sampling temperature for every stage")
    max_completion_length: int = _f(64, "max new tokens of the final (trained) answer")
    max_stage_tokens: int = _f(48, "max new tokens of each discussion turn before the final stage")
    lora: bool = _f(False, "train LoRA adapters instead of full weights (peft)", structural=True)
    lora_r: int = _f(16, "LoRA rank", structural=True)
    lora_alpha: int = _f(32, "LoRA alpha", structural=True)
    lora_target_modules: str | list[str] = _f("all-linear", "LoRA target modules", structural=True)  # noqa: RUF009
    shared_prompt_forward: bool = _f(
        True,
        "loss reads each group's prompt once (exact; ilr_agents/shared_prompt.py); "
        "false = TRL's forward over every row. Baseline and ILR use the same setting",
    )
    # --- generation backend (ilr_agents/vllm_training.py) ------------------------------------------
    generation_backend: Literal["transformers", "vllm"] = _f(
        "transformers",
        "what samples the training rollouts, ILR and baseline alike: transformers (the live model) or vllm "
        "(TRL's vLLM engine per trainer: weights synced after every optimizer step, importance-sampling "
        "correction on)",
    )
    vllm_mode: Literal["colocate", "server"] = _f(
        "colocate",
        "colocate: one engine per agent in the training process; server: one `trl vllm-serve` per agent "
        "(multi-GPU, NCCL weight sync), listed in vllm_server_urls",
    )
    vllm_memory_fraction: float = _f(
        0.3,
        "GPU: share of GPU memory each agent's colocated engine reserves; on CPU each engine gets a fixed KV "
        "cache of $VLLM_CPU_KVCACHE_SPACE GiB (default 1) instead",
    )
    vllm_max_model_length: int | None = _f(
        None, "colocate: engine context length (None = the model's own; lower it to save KV-cache memory)"
    )
    vllm_server_urls: list[str] = _f(  # noqa: RUF009
        [], "vllm_mode=server: one base URL per agent, e.g. [http://10.0.0.2:8000, http://10.0.0.3:8000]"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = _f(
        "float32",
        "stored weight dtype; full fine-tuning needs float32 (master weights: AdamW updates below bf16's "
        "resolution are lost), with mixed_precision: bf16 for bf16 compute; LoRA may load the base in bf16",
    )
    mixed_precision: Literal["no", "bf16"] = _f(
        "no",
        "bf16 = bf16 autocast compute over the stored weights (TRL/transformers bf16 mixed precision; under "
        "FSDP, bf16 copies gathered for compute); no = compute in dtype",
    )
    num_processes: int = _f(
        1,
        "training processes, one per GPU; > 1 (or any accelerate_config) makes `ilr train` / `ilr compare` "
        "start the run under accelerate launch",
    )
    accelerate_config: str | None = _f(
        None,
        "accelerate config for the launch: fsdp2 (each agent's model sharded across the processes), "
        "multi-cpu (gloo data parallel, CPU tests) or a YAML path; None = multi-cpu when num_processes > 1",
    )
    use_cpu: bool | None = _f(None, "force CPU (None = CPU when no GPU is present)")
    seed: int = _f(0, "seed for data order, modes and generation", structural=True)
    # --- output, logging, checkpoints --------------------------------------------------------------
    output_dir: str = _f("runs/ilr", "run folder: checkpoints, metrics.jsonl, tensorboard logs")
    report_to: list[str] = _f(["tensorboard"], "TRL/transformers loggers: tensorboard, wandb, or none")  # noqa: RUF009
    logging_steps: int = _f(1, "log every N steps")
    save_steps: int = _f(0, "checkpoint every K steps (0 = only at the end)")
    save_total_limit: int = _f(
        2, "complete checkpoints kept (older ones are deleted after a newer one is complete)"
    )
    resume: bool = _f(False, "continue from the newest complete checkpoint in output_dir")
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self) -> None:
        _check_types(self)
        self.grpo = _grpo_settings(self.grpo, self)
        _check_values(self)

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ILRConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a mapping of field: value, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key, value in data.items():
            if key in names:
                continue
            if key in MOVED_KEYS:
                raise ConfigError(_moved(key, value))
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see `ilr train --help` for the fields"
            raise ConfigError(f"unknown config key {key!r}: {hint}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> ILRConfig:
        """A YAML file of fields (``extends: <file>`` starts from another file), then dotted overrides."""
        return cls.from_dict(apply_overrides(read_yaml(path), overrides or {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ILRConfig:
        return self.from_dict({**self.to_dict(), **changes})

    @classmethod
    def structural_fields(cls) -> list[str]:
        """Fields that define what a checkpoint is (``structural`` in their metadata): resume keeps them."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("structural")]

    # --- derived -----------------------------------------------------------------------------------
    @property
    def num_agents(self) -> int:
        return len(self.models)

    @property
    def agents(self) -> list[str]:
        return agent_names(self.num_agents)

    @property
    def questions_per_step(self) -> int:
        return self.per_device_train_batch_size // self.num_generations

    @property
    def final_stage(self) -> str:
        from ilr_env.protocols import get_protocol  # the env is imported only when a config asks

        return get_protocol(self.protocol).final_stage(self.debate_rounds)


def _moved(key: str, value: Any) -> str:
    new = MOVED_KEYS[key]
    if new == "mode":
        return f"config key {key!r} was folded into mode: write mode: {value!r} (p in [0, 1])"
    parent, child = new.split(".")
    return f"config key {key!r} moved under {parent}: write {parent}: {{{child}: {value!r}}}"


# --- validation ------------------------------------------------------------------------------------


def _grpo_settings(settings: dict[str, Any], cfg: ILRConfig) -> dict[str, Any]:
    """``grpo:`` merged over GRPO_DEFAULTS, with what can be checked without importing TRL checked here;
    ``grpo_config.build_grpo_config`` checks the rest against TRL's GRPOConfig itself."""
    merged = {**GRPO_DEFAULTS, **settings}
    names = {f.name for f in dataclasses.fields(cfg)}
    for key, value in merged.items():
        if key in names:
            raise ConfigError(
                f"grpo.{key}: ILR reads {key} itself, so it is a top-level field: write {key}: {value!r}"
            )
        if key in GRPO_RUN_OWNED:
            raise ConfigError(f"grpo.{key}: the run sets {key} ({GRPO_RUN_OWNED[key]}); remove it")
        if key in GRPO_DEFAULTS:
            expected = type(GRPO_DEFAULTS[key])
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                merged[key] = value = float(value)
            if not type_ok(value, expected):
                raise ConfigError(
                    f"grpo.{key}={value!r} has the wrong type: expected {expected.__name__} "
                    f"(default {GRPO_DEFAULTS[key]!r})"
                )
    _need(
        merged["learning_rate"] > 0,
        f"grpo.learning_rate={merged['learning_rate']}: must be > 0, e.g. 1e-5 (full) or 2e-4 (LoRA)",
    )
    _need(merged["warmup_steps"] >= 0, f"grpo.warmup_steps={merged['warmup_steps']}: must be >= 0")
    _need(merged["max_grad_norm"] > 0, f"grpo.max_grad_norm={merged['max_grad_norm']}: must be > 0")
    _need(merged["beta"] >= 0, f"grpo.beta={merged['beta']}: the KL coefficient must be >= 0")
    return merged


def _check_types(cfg: ILRConfig) -> None:
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        tp = hints[f.name]
        if not type_ok(value, tp):
            raise ConfigError(
                f"{f.name}={value!r} has the wrong type: expected {describe(tp)} ({f.metadata['help']})"
            )
        is_float = tp is float or float in typing.get_args(tp)
        if is_float and isinstance(value, int) and not isinstance(value, bool):
            setattr(cfg, f.name, float(value))


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_values(c: ILRConfig) -> None:
    _need(c.num_agents >= 1, "models=[]: list at least one model (m >= 1), e.g. models: [tiny, tiny-llama]")
    _need(
        all(isinstance(m, str) and m.strip() for m in c.models),
        f"models={c.models!r}: names must be non-empty",
    )
    _need(
        c.num_generations >= 2,
        f"num_generations={c.num_generations}: GRPO needs a group of >= 2 samples "
        "per question (advantages are relative to the group); set num_generations: 4",
    )
    _need(
        c.per_device_train_batch_size >= c.num_generations
        and c.per_device_train_batch_size % c.num_generations == 0,
        f"per_device_train_batch_size={c.per_device_train_batch_size} is not a multiple of num_generations="
        f"{c.num_generations}: each question's whole group must sit on one process for calibration; use "
        f"{max(1, c.per_device_train_batch_size // c.num_generations) * c.num_generations}",
    )
    _need(c.max_steps >= 1, f"max_steps={c.max_steps}: must be >= 1")
    _need(
        0 < c.vllm_memory_fraction <= 1,
        f"vllm_memory_fraction={c.vllm_memory_fraction}: must be in (0, 1], e.g. 0.3 per agent engine",
    )
    _need(
        c.generation_backend != "vllm" or c.vllm_mode != "server" or len(c.vllm_server_urls) == c.num_agents,
        f"vllm_mode=server needs one `trl vllm-serve` URL per agent: vllm_server_urls has "
        f"{len(c.vllm_server_urls)} for {c.num_agents} models",
    )
    _need(c.temperature > 0, f"temperature={c.temperature}: GRPO samples, so it must be > 0 (e.g. 1.0)")
    _need(c.max_completion_length >= 1, f"max_completion_length={c.max_completion_length}: must be >= 1")
    _need(c.max_stage_tokens >= 1, f"max_stage_tokens={c.max_stage_tokens}: must be >= 1")
    _need(c.debate_rounds >= 1, f"debate_rounds={c.debate_rounds}: must be >= 1")
    _need(
        isinstance(c.mode, str) or 0 <= c.mode <= 1,
        f"mode={c.mode}: a cooperation probability must be in [0, 1] (or use dynamic, cooperate, compete)",
    )
    _need(c.calibration_eps > 0, f"calibration_eps={c.calibration_eps}: must be > 0")
    _need(c.format_reward >= 0, f"format_reward={c.format_reward}: must be >= 0 (0 turns it off)")
    _need(
        c.reward == "correctness" or c.reward_model is not None,
        f"reward={c.reward!r} needs reward_model: a sequence-classification model id or folder",
    )
    _need(
        c.train_limit is None or c.train_limit >= c.questions_per_step,
        f"train_limit={c.train_limit}: need at least questions_per_step={c.questions_per_step} questions",
    )
    _need(c.validation_limit >= 1, f"validation_limit={c.validation_limit}: must be >= 1")
    _need(
        c.lora or c.dtype not in ("bfloat16", "float16"),
        f"dtype={c.dtype} with full fine-tuning: AdamW updates below {c.dtype}'s resolution are lost (at "
        "lr 1e-6 one step left almost every weight unchanged); set dtype: float32 with mixed_precision: bf16 "
        "(fp32 master weights, bf16 compute), or lora: true",
    )
    _need(c.num_processes >= 1, f"num_processes={c.num_processes}: must be >= 1")
    _need(
        not (c.shared_prompt_forward and "fsdp" in (c.accelerate_config or "")),
        f"accelerate_config={c.accelerate_config!r} with shared_prompt_forward: true: the prompt-once loss "
        "breaks FSDP2's backward (measured on GPU: a freed parameter shard); "
        "set shared_prompt_forward: false",
    )
    _need(c.lora_r >= 1 and c.lora_alpha >= 1, f"lora_r={c.lora_r}, lora_alpha={c.lora_alpha}: must be >= 1")
    _need(c.logging_steps >= 1, f"logging_steps={c.logging_steps}: must be >= 1")
    _need(c.save_steps >= 0, f"save_steps={c.save_steps}: must be >= 0 (0 = only at the end)")
    _need(c.save_total_limit >= 1, f"save_total_limit={c.save_total_limit}: keep at least 1 checkpoint")
    _need(bool(c.output_dir.strip()), "output_dir is empty: name a run folder, e.g. runs/ilr")
    known_loggers = {"tensorboard", "wandb", "none"}
    bad = [r for r in c.report_to if r not in known_loggers]
    _need(not bad, f"report_to={c.report_to!r}: unknown logger(s) {bad}; use tensorboard, wandb or none")
    _need(
        c.train_stages in (["final"], [c.final_stage]),
        f"train_stages={c.train_stages!r}: only the final stage ({c.final_stage!r}) can receive gradient "
        "in this version (earlier turns are context); set train_stages: [final]",
    )
    from ilr_agents.self_ranking import SelfRankError, SelfRankSettings

    try:
        SelfRankSettings.from_dict(c.self_rank)
    except SelfRankError as exc:
        raise ConfigError(str(exc)) from exc
    _need(
        c.turn_order == "simultaneous" or c.protocol == "idea3",
        f"turn_order={c.turn_order!r} is defined for protocol idea3, not {c.protocol!r}; use simultaneous",
    )
    _need(
        c.first_speaker == "fixed" or c.turn_order == "alternating",
        f"first_speaker={c.first_speaker!r} orders alternating turns; set turn_order: alternating or "
        "first_speaker: fixed",
    )
    if isinstance(c.abilities, list):
        _need(
            len(c.abilities) == c.num_agents,
            f"abilities has {len(c.abilities)} values for {c.num_agents} agents: give one per model",
        )
    _need(
        c.method == "grpo" or c.num_agents >= 2,
        f"models={c.models!r}: ILR needs at least two agents to discuss; list two models (they may be the "
        "same name) or use method: grpo for the single-agent baseline",
    )
