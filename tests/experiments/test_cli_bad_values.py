"""Every subcommand meets bad values as a user types them: wrong types and ranges through ``--set``, missing
paths, folders that are not runs, unknown names. Each is one line ``ilr <cmd>: error: ...``, exit 2, no
traceback, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.cli import main

MISSING = "{missing}"  # a path under the test's own tmp folder that does not exist

CASES: list[tuple[list[str], str]] = [
    # tasks
    (["tasks", "--grade-gold", "nosuchtask"], "unknown task 'nosuchtask'"),
    (["tasks", "--grade-gold", "gsm8k", "--limit", "-3"], "limit"),
    (["tasks", "--grade-gold", "gsm8k", "--data-dir", MISSING], MISSING),
    # eval: wrong type, wrong range, unknown name, missing path
    (
        ["eval", "--task", "gsm8k", "--model", "tiny", "--limit", "1", "--set", "temperature=abc"],
        "temperature",
    ),
    (
        ["eval", "--task", "gsm8k", "--model", "tiny", "--limit", "1", "--set", "temperature=-1"],
        "temperature",
    ),
    (
        ["eval", "--task", "gsm8k", "--model", "tiny", "--limit", "1", "--set", "max_new_tokens=0"],
        "max_new_tokens",
    ),
    (["eval", "--task", "gsm8k", "--model", "tiny", "--set", "limit=many"], "limit"),
    (["eval", "--task", "gsm8k", "--model", "tiny", "--set", "batch_size=[1, 2]"], "batch_size"),
    (["eval", "--task", "gsm8k", "--model", "tiny", "--limit", "1", "--data-dir", MISSING], MISSING),
    # train
    (["train", "--config", "ilr-tiny", "--set", "max_steps=abc", "--dry-run"], "max_steps"),
    (["train", "--config", "ilr-tiny", "--set", "max_steps=-1", "--dry-run"], "max_steps"),
    (["train", "--config", "ilr-tiny", "--set", "num_generations=0", "--dry-run"], "num_generations"),
    (["train", "--config", f"{MISSING}.yaml", "--dry-run"], "not found"),
    # difficulty
    (
        ["difficulty", "--task", "nosuchtask", "--models", "tiny", "--out", "d.json"],
        "unknown task 'nosuchtask'",
    ),
    (
        [
            "difficulty",
            "--task",
            "gsm8k",
            "--split",
            "test",
            "--models",
            "nosuchmodel",
            "--limit",
            "4",
            "--out",
            "d.json",
        ],
        "nosuchmodel",
    ),
    (
        [
            "difficulty",
            "--task",
            "gsm8k",
            "--models",
            "tiny",
            "--passes",
            "0",
            "--limit",
            "4",
            "--out",
            "d.json",
        ],
        "passes",
    ),
    # compare
    (["compare", "--config", "cpu-demo", "--set", "seeds=abc", "--dry-run"], "seeds"),
    (
        ["compare", "--config", "cpu-demo", "--set", "eval_max_new_tokens=-1", "--dry-run"],
        "eval_max_new_tokens",
    ),
    (["compare", "--config", "cpu-demo", "--set", "eval_batch_size=zero", "--dry-run"], "eval_batch_size"),
    (["compare", "--config", f"{MISSING}.yaml", "--dry-run"], "not found"),
    # bench
    (["bench", "--only", "nosuchcase", "--out", MISSING], "nosuchcase"),
    (["bench", "--only", "math_grading", "--repeats", "0", "--out", MISSING], "repeats"),
    # view
    (["view", MISSING], MISSING),
    # demo
    (["demo", "--config", "nosuchpreset"], "nosuchpreset"),
]


def _one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"ilr {command}: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_value_is_one_line_and_exit_2(
    argv: list[str],
    named: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # anything a failed command wrote would land here
    missing = str(tmp_path / "missing" / "path")
    assert main([a.replace(MISSING, missing) for a in argv]) == 2
    assert named.replace(MISSING, missing) in _one_error_line(capsys, argv[0])
    assert not any(tmp_path.iterdir()), "a failed command left files behind"


def test_a_folder_that_is_not_a_run_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a run\n")
    assert main(["view", str(tmp_path)]) == 2
    assert str(tmp_path) in _one_error_line(capsys, "view")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
