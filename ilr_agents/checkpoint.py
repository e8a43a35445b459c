"""Crash-safe checkpoints for m trainers: a checkpoint exists only once its manifest does.

Each agent's ``GRPOTrainer`` saves its own HF checkpoint (weights or adapter, optimizer, scheduler, RNG
states, trainer state) under ``<run>/<agent>/checkpoint-<step>``. Those folders are written in place, so
a crash can leave one half-written. The ILR manifest ``<run>/checkpoints/manifest-<step>.json`` is
written last, atomically (temporary file, fsync, ``os.replace``), once every agent's folder for that step
is complete; it also holds the config, difficulties and abilities, so a run is restorable from it alone.

Rules that make a SIGKILL or a full disk harmless:
* resume uses the newest manifest whose referenced folders all exist;
* agent folders newer than that manifest are uncommitted and deleted before training continues;
* old checkpoints are deleted only after a newer manifest is complete (manifest first, then folders).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_DIR = "checkpoints"
_MANIFEST_RE = re.compile(r"^manifest-(\d+)\.json$")
_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was required (the message says what was found)."""


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` so readers see the old file or the new one, never a prefix (also on ENOSPC)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=str))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Manifest:
    step: int
    path: Path
    data: dict[str, Any]

    def agent_checkpoint(self, run_dir: Path, agent: str) -> Path:
        return run_dir / self.data["agents"][agent]


def agent_checkpoint_dir(run_dir: Path, agent: str, step: int) -> Path:
    return run_dir / agent / f"checkpoint-{step}"


def list_manifests(run_dir: str | os.PathLike[str]) -> list[Manifest]:
    """Complete manifests, oldest first; unreadable ones or ones naming missing folders are skipped."""
    run_dir = Path(run_dir)
    folder = run_dir / MANIFEST_DIR
    found: list[Manifest] = []
    if not folder.is_dir():
        return found
    for entry in folder.iterdir():
        match = _MANIFEST_RE.match(entry.name)
        if not match:
            continue
        try:
            data = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        agents = data.get("agents") if isinstance(data, dict) else None
        if not agents or not isinstance(agents, dict) or data.get("step") != int(match.group(1)):
            continue
        if all((run_dir / rel).is_dir() for rel in agents.values()):
            found.append(Manifest(int(match.group(1)), entry, data))
    return sorted(found, key=lambda m: m.step)


def latest_manifest(run_dir: str | os.PathLike[str]) -> Manifest | None:
    manifests = list_manifests(run_dir)
    return manifests[-1] if manifests else None


def _agent_checkpoints(run_dir: Path, agents: Iterable[str]) -> list[tuple[str, int, Path]]:
    out = []
    for agent in agents:
        folder = run_dir / agent
        if folder.is_dir():
            for entry in folder.iterdir():
                match = _CKPT_RE.match(entry.name)
                if match and entry.is_dir():
                    out.append((agent, int(match.group(1)), entry))
    return out


def discard_uncommitted(
    run_dir: str | os.PathLike[str], agents: Iterable[str], committed_step: int
) -> list[Path]:
    """Delete agent checkpoint folders newer than the committed step (half-written or never committed)."""
    run_dir = Path(run_dir)
    removed = []
    for _, step, path in _agent_checkpoints(run_dir, agents):
        if step > committed_step:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for stray in (
        (run_dir / MANIFEST_DIR).glob(".manifest-*.tmp") if (run_dir / MANIFEST_DIR).is_dir() else []
    ):
        stray.unlink(missing_ok=True)
        removed.append(stray)
    return removed


class ManifestWriter:
    """Collects "agent saved step s" reports from trainer threads; commits step s when all have reported.

    ``payload`` (config, difficulties, abilities) goes into every manifest. ``keep`` complete checkpoints
    are retained; older ones are pruned after the new manifest is on disk.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        agents: list[str],
        payload: dict[str, Any],
        *,
        keep: int = 2,
        enabled: bool = True,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep}: keep at least one checkpoint")
        self.run_dir = Path(run_dir)
        self.agents = list(agents)
        self.payload = payload
        self.keep = keep
        self.enabled = enabled
        self._saved: dict[int, set[str]] = {}
        self._lock = threading.Lock()
        self.committed: list[int] = []

    def report_saved(self, agent: str, step: int) -> bool:
        """Record that ``agent``'s folder for ``step`` is complete; True when this commits the step."""
        if agent not in self.agents:
            raise ValueError(f"unknown agent {agent!r}: expected one of {self.agents}")
        with self._lock:
            done = self._saved.setdefault(step, set())
            done.add(agent)
            if done != set(self.agents):
                return False
            del self._saved[step]
            if self.enabled:
                self.commit(step)
            return True

    def commit(self, step: int) -> Path:
        missing = [a for a in self.agents if not agent_checkpoint_dir(self.run_dir, a, step).is_dir()]
        if missing:
            raise CheckpointError(f"cannot commit step {step}: no checkpoint folder for {missing}")
        data = {
            "step": step,
            "agents": {
                a: str(agent_checkpoint_dir(self.run_dir, a, step).relative_to(self.run_dir))
                for a in self.agents
            },
            **self.payload,
        }
        path = self.run_dir / MANIFEST_DIR / f"manifest-{step:08d}.json"
        atomic_write_json(path, data)
        self.committed.append(step)
        self.prune()
        return path

    def prune(self) -> None:
        manifests = list_manifests(self.run_dir)
        for old in manifests[: max(0, len(manifests) - self.keep)]:
            old.path.unlink(missing_ok=True)
        kept = {rel for m in list_manifests(self.run_dir) for rel in m.data["agents"].values()}
        newest = max((m.step for m in list_manifests(self.run_dir)), default=-1)
        for _, step, path in _agent_checkpoints(self.run_dir, self.agents):
            if step < newest and str(path.relative_to(self.run_dir)) not in kept:
                shutil.rmtree(path, ignore_errors=True)
