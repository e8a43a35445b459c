"""`--dry-run`: a preset's resolved plan, validated, without loading any model.

A paper-scale run costs GPU-days; before it starts, one screen says what it will do: the launch command,
how each agent's model is sharded, the precision, the reward (and reward model), where question difficulty
comes from, how many train / validation / test questions there are, and the memory each GPU needs
(``experiments/pipeline/memory.py``, from model sizes alone). Data files are read (to count questions);
no model weights are, and nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from experiments.pipeline.memory import (
    GIB,
    MemoryEstimate,
    TrainingShape,
    UnknownModelSizeError,
    architecture,
    estimate_memory,
)
from ilr_agents.config import ILRConfig
from ilr_env import agent_names
from ilr_env.protocols import get_protocol

# Tokens of a question with its chat template and answer instructions (MATH/olympiad problems; generous).
QUESTION_TOKENS = 512


@dataclass
class Plan:
    """What a run will do; ``lines()`` prints it, tests read the fields."""

    name: str
    launch: list[str]
    models: list[tuple[str, int | None]]  # (model, parameters or None when unknown)
    methods: list[str]
    sharding: str
    precision: str
    reward: str
    difficulty: str
    data: dict[str, Any]  # train / validation: count or a reason; test: {benchmark: count or reason}
    memory: MemoryEstimate | None
    memory_note: str = ""
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"plan: {self.name} (dry run: validated, no model loaded)", "", "launch:"]
        out += [f"  {cmd}" for cmd in self.launch]
        out += ["", "models:"]
        for agent, (model, params) in zip(agent_names(len(self.models)), self.models, strict=True):
            size = f"{params / 1e9:.2f}B parameters" if params else "size unknown"
            out.append(f"  {agent}: {model} ({size})")
        out += [
            f"methods: {', '.join(self.methods)}",
            f"sharding: {self.sharding}",
            f"precision: {self.precision}",
            f"reward: {self.reward}",
            f"difficulty: {self.difficulty}",
            "",
            "data (questions):",
            f"  train: {self.data['train']}",
            f"  validation: {self.data['validation']}",
        ]
        out += [f"  test {label}: {count}" for label, count in self.data.get("test", {}).items()]
        out += ["", "memory per GPU (estimate, GiB):"]
        if self.memory is None:
            out.append(f"  unknown: {self.memory_note}")
        else:
            out += [f"  {name:<44} {gib:7.1f}" for name, gib in self.memory.rows()]
            if self.memory_note:
                out.append(f"  ({self.memory_note})")
        if self.notes:
            out += ["", "notes:"] + [f"  {n}" for n in self.notes]
        return out


def _count(load: Any) -> int | str:
    try:
        return len(load())
    except Exception as exc:  # noqa: BLE001 - a dry run reports why a count is unavailable, it does not stop
        text = " ".join(str(exc).split()) or type(exc).__name__
        return f"unavailable here ({text[:300]})"


def data_sizes(
    cfg: ILRConfig, tests: list[tuple[str, str, str, int | None, dict[str, Any]]]
) -> dict[str, Any]:
    """Question counts of the training, validation and test sets.

    ``tests`` holds (label, task, split, limit, task_kwargs) per benchmark."""
    import ilr_env

    val_task = cfg.validation_task or cfg.task
    val_kwargs = cfg.task_kwargs if val_task == cfg.task else {}
    return {
        "train": _count(
            lambda: ilr_env.load_questions(
                cfg.task, cfg.train_split, limit=cfg.train_limit, **cfg.task_kwargs
            )
        ),
        "validation": _count(
            lambda: ilr_env.load_questions(
                val_task, cfg.validation_split, limit=cfg.validation_limit, **val_kwargs
            )
        ),
        "test": {
            label: _count(lambda t=task, s=split, n=limit, kw=kw: ilr_env.load_questions(t, s, limit=n, **kw))
            for label, task, split, limit, kw in tests
        },
    }


def describe_precision(cfg: ILRConfig) -> str:
    mixed = getattr(cfg, "mixed_precision", "no")
    if cfg.lora:
        return f"LoRA adapters (fp32) on {cfg.dtype} base weights" + (
            f", {mixed} autocast compute" if mixed != "no" else ""
        )
    if mixed != "no":
        return f"full fine-tuning: {cfg.dtype} master weights and AdamW state, {mixed} autocast compute"
    return f"full fine-tuning in {cfg.dtype}"


def describe_reward(cfg: ILRConfig) -> str:
    calibration = "Perception Calibration on" if cfg.calibration else "calibration off"
    if cfg.reward == "correctness":
        text = "correctness (0/1)"
        if cfg.method == "ilr" and cfg.calibration and cfg.format_reward == 0:
            text += " - binary rewards make calibration a no-op under GRPO's normalisation"
    elif cfg.reward == "reward_model":
        text = f"reward model {cfg.reward_model}"
    else:
        text = f"graded = correctness + {cfg.reward_model_weight} x reward model {cfg.reward_model}"
    if cfg.format_reward:
        text += f" + format bonus {cfg.format_reward}"
    return f"{text}; {calibration}"


def describe_difficulty(cfg: ILRConfig) -> str:
    kinds = {
        "level": "the dataset's level field",
        "pass_rate": "the base models' pass rates (one greedy answer per question and model)",
        "self_rank": "the paper's LLM self-ranking with the agents' own policies",
    }
    source = kinds.get(cfg.difficulty, f"file {cfg.difficulty}")
    return f"D_q from {source}; abilities: {cfg.abilities if isinstance(cfg.abilities, str) else 'given'}"


def training_shape(cfg: ILRConfig, eval_batch: int = 64, eval_tokens: int = 2048) -> TrainingShape:
    """The per-GPU training shape of ``cfg`` (raises UnknownModelSizeError for a model of unknown size)."""
    discussion = 0
    if cfg.method == "ilr":
        earlier_stages = len(get_protocol(cfg.protocol).stages(cfg.debate_rounds)) - 1
        discussion = earlier_stages * cfg.num_agents * cfg.max_stage_tokens
    world = int(getattr(cfg, "num_processes", 1))
    return TrainingShape(
        agents=[architecture(m) for m in cfg.models],
        world_size=world,
        sharded=world > 1 and (getattr(cfg, "accelerate_config", None) or "").startswith("fsdp"),
        lora_rank=cfg.lora_r if cfg.lora else None,
        master_bytes=2 if cfg.dtype in ("bfloat16", "float16") else 4,
        rows=cfg.per_device_train_batch_size,
        prompt_tokens=QUESTION_TOKENS + discussion,
        completion_tokens=cfg.max_completion_length,
        gradient_checkpointing=bool(cfg.grpo.get("gradient_checkpointing", False)),
        reward_model=architecture(cfg.reward_model)
        if cfg.reward != "correctness" and cfg.reward_model
        else None,
        prompt_rows=cfg.questions_per_step if cfg.shared_prompt_forward else None,
        eval_batch=eval_batch,
        eval_tokens=eval_tokens,
    )


def memory_for(
    configs: list[ILRConfig], eval_batch: int, eval_tokens: int
) -> tuple[MemoryEstimate | None, str]:
    """The largest estimate over a run's methods (ILR's prompts carry the discussion: usually ILR's)."""
    try:
        estimates = [estimate_memory(training_shape(c, eval_batch, eval_tokens)) for c in configs]
    except UnknownModelSizeError as exc:
        return None, str(exc)
    worst = max(estimates, key=lambda e: e.training)
    note = "the largest of the methods; training and vLLM evaluation never share the GPUs"
    return worst, note


def describe_sharding(cfg: ILRConfig) -> str:
    world = int(getattr(cfg, "num_processes", 1))
    engine = getattr(cfg, "accelerate_config", None)
    if world <= 1:
        return "none: one process holds every agent's full model and optimiser state"
    if engine and engine.startswith("fsdp"):
        return (
            f"FSDP2 over {world} processes: each agent's weights, gradients and AdamW state split {world} "
            "ways (every process holds a shard of every agent)"
        )
    return f"none: {world} data-parallel processes (DDP), each holding every agent's full state"


def check_fits(memory: MemoryEstimate | None, gpu_gib: float = 80.0) -> list[str]:
    if memory is None or memory.training / GIB <= gpu_gib:
        return []
    return [
        (
            f"training needs about {memory.training / GIB:.0f} GiB per GPU, more than a {gpu_gib:.0f} GiB "
            "GPU: use GPUs with more memory (H200: 141 GB), shard over more processes (accelerate_config: "
            "fsdp2, num_processes), or train LoRA adapters (lora: true)"
        )
    ]


def _launch_lines(cfg: ILRConfig, config_file: str, front: str) -> list[str]:
    from experiments.pipeline.launch import launch_command, shown

    if cfg.num_processes <= 1 and cfg.accelerate_config is None:
        return [f"{front}  (one process)"]
    return [front, f"  which trains under: {shown(launch_command(cfg, config_file))}"]


def train_plan(cfg: ILRConfig, config_name: str) -> Plan:
    """The plan of ``ilr train --config config_name``."""
    memory, note = memory_for([cfg], eval_batch=1, eval_tokens=1)
    if memory is not None:  # `ilr train` evaluates nothing: no vLLM phase
        memory = dataclasses.replace(memory, vllm_weights=0.0, vllm_kv_cache=0.0)
    return Plan(
        name=config_name,
        launch=_launch_lines(cfg, f"{cfg.output_dir}/launch.yaml", f"ilr train --config {config_name}"),
        models=_sizes(cfg.models),
        methods=[cfg.method],
        sharding=describe_sharding(cfg),
        precision=describe_precision(cfg),
        reward=describe_reward(cfg),
        difficulty=describe_difficulty(cfg),
        data=data_sizes(cfg, []),
        memory=memory,
        memory_note=note,
        notes=check_fits(memory),
    )


def compare_plan(config: Any, config_name: str) -> Plan:
    """The plan of ``ilr compare --config config_name`` (``config``: a validated CompareConfig)."""
    seed = config.seeds[0]
    methods = {label: config.training_config(label, seed) for label in config.methods}
    first = next(iter(methods.values()))
    launch = [f"ilr compare --config {config_name}"]
    for label, cfg in methods.items():
        launch += [
            f"  {label}: {line.strip()}"
            for line in _launch_lines(cfg, f"{cfg.output_dir}/launch.yaml", "trains in this process")[1:]
        ] or [f"  {label}: trains in this process"]
    launch.append(f"  evaluation: in this process, {config.eval_backend}, each trained agent alone")
    memory, note = memory_for(
        list(methods.values()), config.eval_batch_size, QUESTION_TOKENS + config.eval_max_new_tokens
    )
    tests = [(s.label, s.task, s.split, s.limit, s.task_kwargs) for s in config.evaluate]
    rewards = dict.fromkeys(describe_reward(c) for c in methods.values())
    return Plan(
        name=config_name,
        launch=launch,
        models=_sizes(first.models),
        methods=[f"{label} ({cfg.method})" for label, cfg in methods.items()],
        sharding=describe_sharding(first),
        precision=describe_precision(first),
        reward=" | ".join(rewards),
        difficulty=describe_difficulty(first),
        data=data_sizes(first, tests),
        memory=memory,
        memory_note=note,
        notes=check_fits(memory)
        + [f"seeds: {config.seeds}; {len(config.methods)} methods x {len(config.seeds)} seeds"],
    )


def _sizes(models: list[str]) -> list[tuple[str, int | None]]:
    out = []
    for m in models:
        try:
            out.append((m, architecture(m).parameters))
        except UnknownModelSizeError:
            out.append((m, None))
    return out
