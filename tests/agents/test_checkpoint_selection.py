"""Which checkpoint a resume picks, on hand-made run folders (no training): the newest manifest whose
agent folders all exist, never one that names a folder a crash or a prune removed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ilr_agents.checkpoint import (
    MANIFEST_DIR,
    CheckpointError,
    ManifestWriter,
    agent_checkpoint_dir,
    atomic_write_json,
    atomic_write_text,
    discard_uncommitted,
    latest_manifest,
    list_manifests,
)

AGENTS = ["agent_0", "agent_1"]


def _commit(run: Path, step: int, agents=AGENTS, payload=None) -> Path:
    """A step as the trainers leave it: every agent's folder, then the manifest."""
    for agent in agents:
        agent_checkpoint_dir(run, agent, step).mkdir(parents=True, exist_ok=True)
    writer = ManifestWriter(run, list(agents), payload or {"config": {"seed": 1}}, keep=100)
    return writer.commit(step)


def test_resume_skips_a_manifest_whose_agent_folder_no_longer_exists(tmp_path):
    _commit(tmp_path, 2)
    _commit(tmp_path, 4)
    shutil.rmtree(agent_checkpoint_dir(tmp_path, "agent_1", 4))
    manifest = latest_manifest(tmp_path)
    assert manifest is not None and manifest.step == 2
    assert [m.step for m in list_manifests(tmp_path)] == [2]
    assert manifest.agent_checkpoint(tmp_path, "agent_1") == tmp_path / "agent_1" / "checkpoint-2"


def test_a_file_where_the_agent_folder_should_be_does_not_count(tmp_path):
    _commit(tmp_path, 1)
    _commit(tmp_path, 3)
    folder = agent_checkpoint_dir(tmp_path, "agent_0", 3)
    shutil.rmtree(folder)
    folder.write_text("not a checkpoint")
    assert latest_manifest(tmp_path).step == 1


def test_newest_complete_manifest_wins_by_step_not_by_name_or_order(tmp_path):
    for step in (9, 10, 100, 3):
        _commit(tmp_path, step)
    assert [m.step for m in list_manifests(tmp_path)] == [3, 9, 10, 100]
    latest = latest_manifest(tmp_path)
    assert latest.step == 100
    assert latest.path == tmp_path / MANIFEST_DIR / "manifest-00000100.json"
    assert latest.data["config"] == {"seed": 1}
    assert latest.data["agents"] == {a: f"{a}/checkpoint-100" for a in AGENTS}


@pytest.mark.parametrize(
    "name, text",
    [
        ("manifest-00000007.json", "{torn"),
        ("manifest-00000007.json", json.dumps({"step": 6, "agents": {"agent_0": "agent_0/checkpoint-2"}})),
        ("manifest-00000007.json", json.dumps({"step": 7, "agents": {}})),
        ("manifest-00000007.json", json.dumps({"step": 7})),
        ("manifest-00000007.json", json.dumps([7])),
        ("manifest-00000007.json", json.dumps({"step": 7, "agents": ["agent_0/checkpoint-2"]})),
        ("manifest-7.json.bak", json.dumps({"step": 7, "agents": {"agent_0": "agent_0/checkpoint-2"}})),
        ("other-00000007.json", json.dumps({"step": 7, "agents": {"agent_0": "agent_0/checkpoint-2"}})),
    ],
)
def test_unusable_manifests_are_skipped(tmp_path, name, text):
    _commit(tmp_path, 2)
    (tmp_path / MANIFEST_DIR / name).write_text(text)
    assert [m.step for m in list_manifests(tmp_path)] == [2]


def test_no_manifest_folder_means_no_checkpoint(tmp_path):
    assert list_manifests(tmp_path) == [] and latest_manifest(tmp_path) is None
    (tmp_path / MANIFEST_DIR).mkdir()
    assert latest_manifest(tmp_path) is None


def test_discard_uncommitted_removes_only_newer_agent_folders_and_stray_temporaries(tmp_path):
    _commit(tmp_path, 2)
    for agent, step in (("agent_0", 3), ("agent_1", 4)):
        agent_checkpoint_dir(tmp_path, agent, step).mkdir(parents=True)
    (tmp_path / "agent_0" / "checkpoint-9.tmp").mkdir()  # not a checkpoint folder name
    (tmp_path / "agent_2" / "checkpoint-5").mkdir(parents=True)  # not an agent of this run
    stray = tmp_path / MANIFEST_DIR / ".manifest-00000004.json.abc.tmp"
    stray.write_text("{")
    removed = discard_uncommitted(tmp_path, AGENTS, 2)
    assert sorted(removed) == sorted(
        [agent_checkpoint_dir(tmp_path, "agent_0", 3), agent_checkpoint_dir(tmp_path, "agent_1", 4), stray]
    )
    assert all(not p.exists() for p in removed)
    assert agent_checkpoint_dir(tmp_path, "agent_0", 2).is_dir()
    assert (tmp_path / "agent_0" / "checkpoint-9.tmp").is_dir()
    assert (tmp_path / "agent_2" / "checkpoint-5").is_dir()
    assert discard_uncommitted(tmp_path / "fresh", AGENTS, 0) == []


def test_writer_commits_a_step_once_every_agent_reported(tmp_path):
    writer = ManifestWriter(tmp_path, AGENTS, {"abilities": {"agent_0": 0.5}}, keep=2)
    for agent in AGENTS:
        agent_checkpoint_dir(tmp_path, agent, 1).mkdir(parents=True)
    assert writer.report_saved("agent_1", 1) is False
    assert writer.report_saved("agent_1", 1) is False  # the same agent twice is not everyone
    assert latest_manifest(tmp_path) is None
    assert writer.report_saved("agent_0", 1) is True
    assert writer.committed == [1]
    assert latest_manifest(tmp_path).data["abilities"] == {"agent_0": 0.5}
    with pytest.raises(
        ValueError, match=r"^unknown agent 'agent_9': expected one of \['agent_0', 'agent_1'\]$"
    ):
        writer.report_saved("agent_9", 1)


def test_disabled_writer_reports_but_writes_nothing(tmp_path):
    writer = ManifestWriter(tmp_path, AGENTS, {}, enabled=False)
    for agent in AGENTS:
        agent_checkpoint_dir(tmp_path, agent, 1).mkdir(parents=True)
        writer.report_saved(agent, 1)
    assert latest_manifest(tmp_path) is None and writer.committed == []


def test_commit_refuses_a_step_with_a_missing_agent_folder(tmp_path):
    writer = ManifestWriter(tmp_path, AGENTS, {})
    agent_checkpoint_dir(tmp_path, "agent_0", 5).mkdir(parents=True)
    with pytest.raises(
        CheckpointError, match=r"^cannot commit step 5: no checkpoint folder for \['agent_1'\]$"
    ):
        writer.commit(5)
    assert latest_manifest(tmp_path) is None


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_prune_keeps_the_newest_manifests_and_their_folders(tmp_path, keep):
    writer = ManifestWriter(tmp_path, AGENTS, {}, keep=keep)
    for step in range(1, 6):
        for agent in AGENTS:
            agent_checkpoint_dir(tmp_path, agent, step).mkdir(parents=True)
        writer.commit(step)
    kept = list(range(6 - keep, 6))
    assert [m.step for m in list_manifests(tmp_path)] == kept
    for agent in AGENTS:
        steps = sorted(int(p.name.split("-")[1]) for p in (tmp_path / agent).iterdir())
        assert steps == kept


def test_prune_leaves_folders_newer_than_the_newest_manifest(tmp_path):
    writer = ManifestWriter(tmp_path, AGENTS, {}, keep=1)
    for step in (1, 2):
        for agent in AGENTS:
            agent_checkpoint_dir(tmp_path, agent, step).mkdir(parents=True)
    agent_checkpoint_dir(tmp_path, "agent_0", 3).mkdir(parents=True)  # being written by a trainer
    writer.commit(1)
    writer.commit(2)
    assert not agent_checkpoint_dir(tmp_path, "agent_0", 1).exists()
    assert agent_checkpoint_dir(tmp_path, "agent_0", 3).is_dir()


def test_keep_below_one_is_refused():
    with pytest.raises(ValueError, match=r"^keep=0: keep at least one checkpoint$"):
        ManifestWriter("run", AGENTS, {}, keep=0)


def test_atomic_writes_replace_whole_files(tmp_path):
    path = tmp_path / "deep" / "er" / "state.json"
    atomic_write_json(path, {"b": 1, "a": Path("x")})
    assert path.read_text() == '{\n "a": "x",\n "b": 1\n}'
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_a_failed_replace_leaves_the_old_manifest_and_no_temporary(tmp_path, monkeypatch):
    """The temporary sits beside its target, named so that discard_uncommitted's sweep finds it."""
    path = tmp_path / MANIFEST_DIR / "manifest-00000003.json"
    atomic_write_text(path, "old")
    temporaries = []

    def refuse(src, dst):
        temporaries.append(Path(src))
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", refuse)
    with pytest.raises(OSError, match="^disk full$"):
        atomic_write_text(path, "new")
    (tmp,) = temporaries
    assert tmp.parent == path.parent
    assert tmp.name.startswith(".manifest-00000003.json.") and tmp.name.endswith(".tmp")
    assert not tmp.exists() and path.read_text() == "old"


def test_default_writer_keeps_two_checkpoints(tmp_path):
    writer = ManifestWriter(tmp_path, AGENTS, {})
    for step in (1, 2, 3, 4):
        for agent in AGENTS:
            agent_checkpoint_dir(tmp_path, agent, step).mkdir(parents=True)
        writer.commit(step)
    assert [m.step for m in list_manifests(tmp_path)] == [3, 4]


def test_prune_without_any_manifest_removes_nothing(tmp_path):
    for agent in AGENTS:
        agent_checkpoint_dir(tmp_path, agent, 0).mkdir(parents=True)
    ManifestWriter(tmp_path, AGENTS, {}).prune()
    assert all(agent_checkpoint_dir(tmp_path, a, 0).is_dir() for a in AGENTS)


def test_cleanup_never_follows_a_linked_checkpoint_out_of_the_run(tmp_path):
    """A checkpoint folder that is a link (to a copy kept elsewhere) cannot be removed as a tree: the
    cleanup carries on and the linked copy is untouched."""
    outside = tmp_path / "elsewhere"
    (outside / "weights").mkdir(parents=True)
    run = tmp_path / "run"
    _commit(run, 1)
    (run / "agent_0").mkdir(exist_ok=True)
    (run / "agent_0" / "checkpoint-7").symlink_to(outside, target_is_directory=True)
    discard_uncommitted(run, AGENTS, 1)
    writer = ManifestWriter(run, AGENTS, {}, keep=1)
    (run / "agent_0" / "checkpoint-0").symlink_to(outside, target_is_directory=True)
    _commit(run, 2)
    writer.prune()
    assert (outside / "weights").is_dir()
    assert latest_manifest(run).step == 2
