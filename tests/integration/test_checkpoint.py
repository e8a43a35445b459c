"""Checkpoints: stop + resume equals an uninterrupted run; a full disk mid-save keeps the previous one."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("trl")

from ilr_agents.checkpoint import (
    ManifestWriter,
    atomic_write_json,
    latest_manifest,
    list_manifests,
)
from ilr_agents.config import ILRConfig
from ilr_agents.run_log import RunLog
from ilr_agents.training import train_ilr

# Same seeds, same data, same rollouts: resumed weights match to float32 round-off. Stated tolerance:
TOL = 1e-6


def config(tiny_run: Callable[..., dict], out: Path, **kw: Any) -> ILRConfig:
    return ILRConfig(**tiny_run(out, max_steps=4, save_steps=2, **kw))


def final_weights(run: Path, agent: str, step: int) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / agent / f"checkpoint-{step}" / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, step: int) -> None:
    for agent in ("agent_0", "agent_1"):
        wa, wb = final_weights(a, agent, step), final_weights(b, agent, step)
        assert wa.keys() == wb.keys()
        diff = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
        assert diff <= TOL, f"{agent}: max |Δw| = {diff}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, tiny_run: Callable[..., dict]) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    train_ilr(config(tiny_run, out))
    return out


def test_stop_then_resume_matches_uninterrupted(
    tmp_path: Path, tiny_run: Callable[..., dict], straight: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = RunLog.ilr_step

    def stop_at_three(self: Any, result: Any, step_time: float | None) -> None:
        if result.step == 3:
            raise KeyboardInterrupt("user stopped the run")
        original(self, result, step_time)

    monkeypatch.setattr(RunLog, "ilr_step", stop_at_three)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_ilr(config(tiny_run, out))
    assert latest_manifest(out).step == 2
    monkeypatch.setattr(RunLog, "ilr_step", original)
    result = train_ilr(config(tiny_run, out, resume=True))
    assert result.resumed_from == 2 and result.step == 4
    assert_same_weights(straight, out, 4)
    steps = [
        json.loads(x)["step"]
        for x in (out / "metrics.jsonl").read_text().splitlines()
        if json.loads(x)["kind"] == "ilr"
    ]
    assert steps == [1, 1, 2, 2, 3, 3, 4, 4]  # no duplicated or missing step after the resume


def test_full_disk_mid_save_keeps_previous_checkpoint(
    tmp_path: Path, tiny_run: Callable[..., dict], straight: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    real_save = torch.save

    def full_disk(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if "agent_1" in str(f) and "checkpoint-4" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "run"
    with pytest.raises(OSError) as info:
        train_ilr(config(tiny_run, out))
    assert info.value.errno == errno.ENOSPC
    manifest = latest_manifest(out)
    assert manifest.step == 2  # step 4 never committed
    for agent in ("agent_0", "agent_1"):
        assert (out / agent / "checkpoint-2" / "optimizer.pt").is_file()
        final_weights(out, agent, 2)  # loads: not truncated
    monkeypatch.setattr(torch, "save", real_save)
    train_ilr(config(tiny_run, out, resume=True))
    assert_same_weights(straight, out, 4)


def test_manifest_writer_commits_only_when_all_agents_saved_and_prunes_after(tmp_path: Path) -> None:
    agents = ["a", "b"]
    writer = ManifestWriter(tmp_path, agents, {"config": {}}, keep=1)
    for step in (1, 2):
        for agent in agents:
            (tmp_path / agent / f"checkpoint-{step}").mkdir(parents=True)
        assert writer.report_saved("a", step) is False
        assert latest_manifest(tmp_path) is None or latest_manifest(tmp_path).step == step - 1
        assert writer.report_saved("b", step) is True
    assert [m.step for m in list_manifests(tmp_path)] == [2]
    assert not (tmp_path / "a" / "checkpoint-1").exists() and (tmp_path / "a" / "checkpoint-2").exists()


def test_atomic_write_leaves_old_file_on_enospc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    path = tmp_path / "m.json"
    atomic_write_json(path, {"v": 1})

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError):
        atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary left behind
