"""SIGKILL a training process at random points, `ilr train --resume` it, and get the uninterrupted result.

Kill points are random but seeded: after the run has made some progress (a rollout line appeared), wait
a seeded random delay and SIGKILL, so kills land inside rollouts, optimizer steps and checkpoint writes
(checkpoints are written every step here). After every kill: each complete checkpoint loads, and once
resumed no uncommitted folder or temporary file remains.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("trl")

from ilr_agents.checkpoint import MANIFEST_DIR, list_manifests
from ilr_agents.config import ILRConfig
from ilr_agents.training import train_ilr

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-6  # same seeds and data: float32 round-off only
AGENTS = ("agent_0", "agent_1")
Setup = tuple[Callable[[Path], dict], Path]  # (run fields for an output folder, the uninterrupted run)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_run: Callable[..., dict]) -> Setup:
    def fields(out: Path) -> dict:
        return tiny_run(out, max_steps=4, save_steps=1, save_total_limit=2)

    straight = tmp_path_factory.mktemp("straight") / "run"
    train_ilr(ILRConfig(**fields(straight)))
    return fields, straight


def weights(run: Path, agent: str, step: int) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / agent / f"checkpoint-{step}" / "model.safetensors"))


def check_committed_checkpoints_load(run: Path) -> None:
    import torch

    for manifest in list_manifests(run):
        for agent in AGENTS:
            folder = manifest.agent_checkpoint(run, agent)
            weights(run, agent, manifest.step)
            torch.load(folder / "optimizer.pt", weights_only=False)
            torch.load(folder / "scheduler.pt", weights_only=False)


def launch(config_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "train", "--config", str(config_path), "--resume"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def rollout_lines(run: Path) -> int:
    path = run / "rollouts.rank0.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def kill_after_progress(proc: subprocess.Popen, run: Path, rng: random.Random) -> bool:
    """SIGKILL once the run has done at least one new step plus a random delay; False if it finished first."""
    start = rollout_lines(run)
    deadline = time.monotonic() + 300
    while rollout_lines(run) <= start:
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("training made no progress in 300 s")
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.8))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def run_with_kills(tmp_path: Path, setup: Setup, kills: int, seed: int) -> int:
    fields, straight = setup
    run = tmp_path / "run"
    config_path = tmp_path / "train.yaml"
    config_path.write_text(yaml.safe_dump(fields(run)))
    rng = random.Random(seed)
    killed = 0
    for _ in range(kills):
        proc = launch(config_path)
        if not kill_after_progress(proc, run, rng):
            break
        killed += 1
        check_committed_checkpoints_load(run)
    assert killed >= 1, "the run finished before any kill: make it longer"
    proc = launch(config_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]

    check_committed_checkpoints_load(run)
    committed = {
        str(m.agent_checkpoint(run, a).relative_to(run)) for m in list_manifests(run) for a in AGENTS
    }
    on_disk = {str(p.relative_to(run)) for a in AGENTS for p in (run / a).glob("checkpoint-*")}
    assert on_disk == committed, f"uncommitted leftovers: {on_disk - committed}"
    assert not list((run / MANIFEST_DIR).glob(".*.tmp"))
    assert max(m.step for m in list_manifests(run)) == 4
    for agent in AGENTS:
        a, b = weights(straight, agent, 4), weights(run, agent, 4)
        diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        assert diff <= TOL, f"{agent}: max |Δw| = {diff} after {killed} kills"
    return killed


def test_sigkill_once_then_resume_matches_uninterrupted(tmp_path: Path, setup: Setup) -> None:
    assert run_with_kills(tmp_path, setup, kills=1, seed=0) == 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_repeatedly_then_resume_matches_uninterrupted(
    tmp_path: Path, setup: Setup, seed: int
) -> None:
    assert run_with_kills(tmp_path, setup, kills=3, seed=seed) >= 2
