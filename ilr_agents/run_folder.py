"""One run's folder, from the resume decision to the final summary, for every training method.

A run folder (``output_dir``) holds ``config.yaml``, ``metrics.jsonl`` (one line per TRL log, plus ILR's
per-step rows), ``<agent>/`` (TRL output and HF checkpoints), ``checkpoints/manifest-<step>.json`` (a step
is committed once every agent saved it, see checkpoint.py) and ``train_summary.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ilr_agents.checkpoint import ManifestWriter, atomic_write_text, discard_uncommitted, latest_manifest
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.grpo_config import check_grpo_args
from ilr_agents.vllm_training import check_generation_backend


@dataclass
class TrainResult:
    """What a finished (or resumed-and-finished) run of any method hands back."""

    output_dir: Path
    step: int
    agents: list[str]
    metrics_path: Path
    resumed_from: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


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
        self.agents = config.agents
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
