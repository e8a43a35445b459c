"""Single-agent GRPO vs ILR from the same initial models, each trained agent evaluated alone: the
experiment behind `ilr compare` (the command only parses, calls ``run_comparison`` and prints).

Reads top to bottom as the experiment runs:
1. load and validate the preset (every training config is built and checked before any model loads);
2. evaluate the base models alone on the held-out benchmarks (once; greedy decoding is seed-free);
3. for each seed and each method (baseline, ILR, ablations): train with the same budget;
4. evaluate every trained agent alone, with the plain test-time prompt, on the same held-out questions;
5. write ``runs/<name>/``: results.json, report.md, PNG plots, the configs, every evaluated episode
   (``transcripts/``, whose records the per-question outcomes are computed from) and viewer.html.
"""

from __future__ import annotations

import ctypes
import dataclasses
import difflib
import gc
import json
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.pipeline import presets
from ilr_agents.config import MOVED_KEYS, ConfigError, ILRConfig
from ilr_agents.config_files import apply_overrides, read_yaml
from ilr_agents.config_types import describe, type_ok


@dataclass
class EvalSpec:
    task: str
    split: str = "test"
    limit: int | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.task}:{self.split}" + (f"[:{self.limit}]" if self.limit else "")


@dataclass
class CompareConfig:
    """A comparison preset. ``train`` holds ILRConfig fields shared by every method; ``methods`` maps a
    label to the ILRConfig fields that make that method (e.g. ``{method: grpo}``). A preset may start from
    another (``extends: <preset>``): mappings merge key by key, except ``methods``, which is replaced so
    that a preset names exactly its methods (or picks some of its parent's with ``only``)."""

    name: str
    train: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    evaluate: list[EvalSpec]
    description: str = ""
    notes: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    eval_max_new_tokens: int = 64
    eval_batch_size: int = 16
    eval_backend: str = "transformers"
    evaluate_base: bool = True
    output_root: str = "runs"
    paired: list[list[str]] = field(default_factory=list)
    only: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._check_types()
        if self.eval_max_new_tokens < 1 or self.eval_batch_size < 1:
            raise ConfigError(
                f"eval_max_new_tokens={self.eval_max_new_tokens}, eval_batch_size={self.eval_batch_size}: "
                "both must be >= 1"
            )
        self._pick_methods()
        if not self.evaluate:
            raise ConfigError("evaluate is empty: list at least one held-out benchmark {task, split, limit}")
        self.evaluate = [e if isinstance(e, EvalSpec) else EvalSpec(**e) for e in self.evaluate]
        if self.eval_backend not in ("transformers", "vllm"):
            raise ConfigError(f"eval_backend={self.eval_backend!r}: use 'transformers' or 'vllm'")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds={self.seeds!r}: give one or more distinct integers")
        for spec in self.evaluate:
            if spec.task == self.train.get("task") and spec.split == self.train.get("train_split", "train"):
                raise ConfigError(f"evaluate {spec.label} uses the training split: pick a held-out split")
        for label in self.methods:
            self.training_config(label, self.seeds[0])  # every method validated before anything loads

    def _pick_methods(self) -> None:
        """``only`` keeps some of the preset's methods, and the paired tests that still have both sides."""
        if not self.methods:
            raise ConfigError("methods is empty: name at least one method, e.g. {grpo: {method: grpo}}")
        if not self.only:
            return
        unknown = [m for m in self.only if m not in self.methods]
        if unknown:
            raise ConfigError(f"only={self.only!r} names no method {unknown}: pick from {list(self.methods)}")
        self.methods = {k: v for k, v in self.methods.items() if k in self.only}
        self.paired = [p for p in self.paired if all(self._runs(label) for label in p)]

    def _check_types(self) -> None:
        """A wrong YAML type names the compare field before anything uses it (``seeds=abc`` would otherwise
        surface as a training seed ``'a'``)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "evaluate" and not type_ok(value, hints[f.name]):
                raise ConfigError(
                    f"{f.name}={value!r} has the wrong type: expected {describe(hints[f.name])}"
                )

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> CompareConfig:
        """A preset name or YAML file, then ``overrides`` (``KEY: VALUE``, dotted keys allowed). A key that
        is not a compare field is a training field, shared by every method: ``max_steps`` means
        ``train.max_steps`` and ``grpo.learning_rate`` means ``train.grpo.learning_rate``."""
        data = read_yaml(presets.resolve("compare", path), replace=("methods",))
        names = [f.name for f in dataclasses.fields(cls)]
        shared = [f.name for f in dataclasses.fields(ILRConfig)] + list(MOVED_KEYS)
        routed = {
            (f"train.{key}" if key.split(".")[0] in shared else key): value
            for key, value in (overrides or {}).items()
        }
        data = apply_overrides(data, routed)
        if "transcripts" in data:
            raise ConfigError(
                "transcripts is no longer a compare key: every evaluated episode is written to "
                "RUN_DIR/transcripts/; remove the key"
            )
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1) or difflib.get_close_matches(
                    key, shared, n=1
                )
                raise ConfigError(
                    f"unknown compare key {key!r}" + (f": did you mean {close[0]!r}?" if close else "")
                )
        return cls(**data)

    def _runs(self, label: str) -> bool:
        """Whether a ``paired`` label (``base <model>`` or ``<method> agent_<i>``) belongs to this run."""
        return label.startswith("base ") or label.rsplit(" ", 1)[0] in self.methods

    def run_dir(self) -> Path:
        return Path(self.output_root) / self.name

    def training_config(self, label: str, seed: int) -> ILRConfig:
        fields = {
            **self.train,
            **self.methods[label],
            "seed": seed,
            "output_dir": str(self.run_dir() / "train" / f"{label}-seed{seed}"),
        }
        return ILRConfig.from_dict(fields)


def final_checkpoints(run_dir: Path, agents: list[str]) -> dict[str, Path]:
    """Each agent's newest committed checkpoint folder (weights or LoRA adapter)."""
    from ilr_agents.checkpoint import latest_manifest

    manifest = latest_manifest(run_dir)
    if manifest is None:
        raise RuntimeError(f"training in {run_dir} left no complete checkpoint; see its metrics.jsonl")
    return {agent: manifest.agent_checkpoint(run_dir, agent) for agent in agents}


def load_policy(
    model: str, checkpoint: Path | None, lora: bool, name: str, backend: str = "transformers"
) -> Any:
    """A base model, a trained full checkpoint, or a LoRA adapter on top of the base it was trained from."""
    from ilr_agents.policies import PolicySpec, build_policy

    return build_policy(PolicySpec.for_checkpoint(model, checkpoint, lora=lora, name=name, backend=backend))


def evaluate_policy(
    policy: Any, config: CompareConfig, questions: dict[str, list[Any]], label: str, seed: int | None = None
) -> dict[str, dict[str, Any]]:
    """Per benchmark, every episode written to ``RUN_DIR/transcripts/`` and the per-question outcomes read
    back from those records (so the report and the viewer show the same answers)."""
    from experiments.pipeline.outcomes import question_outcomes
    from experiments.reports.records import read_records
    from experiments.reports.viewer import add_transcripts
    from ilr_agents.evaluation import evaluate_alone
    from ilr_agents.policies import SamplingParams

    params = SamplingParams(max_new_tokens=config.eval_max_new_tokens, temperature=0.0)
    column = label if seed is None else f"{label} seed {seed}"
    out = {}
    for spec in config.evaluate:
        result = evaluate_alone(
            policy,
            questions[spec.label],
            params,
            task=spec.task,
            batch_size=config.eval_batch_size,
            progress=True,
            env_kwargs={"prompts": config.train.get("prompts") or None},
        )
        records = (r.to_dict() for r in result.records)
        path = add_transcripts(config.run_dir(), column, spec.label, records, seed)
        out[spec.label] = question_outcomes(read_records(path), questions[spec.label])
    return out


def release_memory() -> None:
    """Give a finished phase's models, optimisers and caches back before the next phase loads its own.

    Trainers hold reference cycles (callbacks, accelerator state), so they die only at a collection; glibc
    then keeps freed arenas mapped unless asked to trim, and a process that trains several methods would
    otherwise hold every finished phase's peak at once.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def held_out_questions(config: CompareConfig) -> tuple[dict[str, list[Any]], dict[str, dict[str, int]]]:
    """Evaluation questions with any question whose text also occurs in the training pool removed."""
    import ilr_env

    probe = ILRConfig.from_dict({**config.train, "output_dir": str(config.run_dir())})
    train = ilr_env.load_questions(
        probe.task, probe.train_split, limit=probe.train_limit, **probe.task_kwargs
    )
    seen = {" ".join(q.prompt.split()) for q in train}
    questions, counts = {}, {}
    for spec in config.evaluate:
        loaded = ilr_env.load_questions(spec.task, spec.split, limit=spec.limit, **spec.task_kwargs)
        kept = [q for q in loaded if " ".join(q.prompt.split()) not in seen]
        questions[spec.label] = kept
        counts[spec.label] = {"evaluated": len(kept), "dropped": len(loaded) - len(kept)}
    return questions, counts


def check_trainer_settings(config: CompareConfig) -> None:
    """TRL's own check of every method's ``grpo:`` settings (a GRPOConfig is built), before anything loads."""
    from ilr_agents.grpo_config import check_grpo_args

    for label in config.methods:
        check_grpo_args(config.training_config(label, config.seeds[0]))


def write_page(run_dir: Path) -> None:
    """The viewer, which must not cost a run its report: a folder from an older ilr (whose transcripts the
    viewer no longer reads) still gets its report rebuilt, and says why it has no page."""
    from experiments.reports.viewer import ViewerInputError, write_viewer

    try:
        write_viewer(run_dir)
    except ViewerInputError as exc:
        print(f"viewer.html not written: {exc}")


def run_comparison(config: CompareConfig, *, report_only: bool = False) -> Path:
    from experiments.pipeline.methods import set_run_sandbox_policy, train
    from experiments.reports.report import write_report

    run_dir = config.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    results_path = run_dir / "results.json"
    if report_only:
        results = json.loads(results_path.read_text())
        write_page(run_dir)
        return write_report(run_dir, results, [tuple(p) for p in config.paired])

    import yaml

    check_trainer_settings(config)
    # one sandbox policy for every phase, set before the base models are graded (methods.py says why)
    sandbox_policy = set_run_sandbox_policy(
        [config.training_config(m, s) for m in config.methods for s in config.seeds]
    )
    (run_dir / "compare.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
    questions, held_out = held_out_questions(config)
    results: dict[str, Any] = {
        "name": config.name,
        "description": config.description,
        "notes": config.notes,
        "config": dataclasses.asdict(config),
        "evaluations": {},
        "training_logs": {},
        "timing": {},
        "train_summaries": {},
        "held_out": held_out,
        "sandbox_policy": sandbox_policy,
    }

    def record(label: str, outcomes: dict[str, dict[str, Any]]) -> None:
        for bench, o in outcomes.items():
            results["evaluations"].setdefault(bench, {}).setdefault(label, []).append(o)

    if config.evaluate_base:
        started = time.perf_counter()
        base_models = config.training_config(next(iter(config.methods)), config.seeds[0]).models
        for model in dict.fromkeys(base_models):
            policy = load_policy(model, None, False, model, config.eval_backend)
            record(f"base {model}", evaluate_policy(policy, config, questions, f"base {model}"))
            del policy
            release_memory()
        results["timing"]["evaluate base"] = time.perf_counter() - started

    for seed in config.seeds:
        for label in config.methods:
            cfg = config.training_config(label, seed)
            started = time.perf_counter()
            result = train(cfg)
            release_memory()
            results["timing"][f"train {label} seed {seed}"] = time.perf_counter() - started
            results["training_logs"][f"{label} seed {seed}"] = str(result.metrics_path)
            results["train_summaries"][f"{label} seed {seed}"] = {"steps": result.step}
            started = time.perf_counter()
            for agent, ckpt in final_checkpoints(result.output_dir, result.agents).items():
                model = cfg.models[int(agent.split("_")[1])]
                name = f"{label} {agent}"
                policy = load_policy(model, ckpt, cfg.lora, name, config.eval_backend)
                record(name, evaluate_policy(policy, config, questions, name, seed))
                del policy
                release_memory()
            results["timing"][f"evaluate {label} seed {seed}"] = time.perf_counter() - started
            results_path.write_text(
                json.dumps(results, indent=1, default=str)
            )  # partial results survive a crash
    write_page(run_dir)
    return write_report(run_dir, results, [tuple(p) for p in config.paired])
