"""The fallback without bubblewrap (forced with ``isolation="unsafe_subprocess"``, which works whether or not
bwrap is installed): code grading refuses it unless the user opts in by a name that says unsafe; once allowed,
its audit hook refuses changes outside the program's own directory, and it warns once per process; the
``require_bwrap`` policy refuses it even then."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ilr_env.grading import run_program, sandbox


def _attempt(name: str, action: str) -> str:
    return (
        f"try:\n    {action}\n    print({name!r}, 'DONE')\n"
        f"except PermissionError as e:\n    print({name!r}, e)\n"
    )


def test_fallback_refuses_changes_outside_the_programs_directory(tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_text("x")
    c, d = str(canary), str(tmp_path / "sub")
    attempts = {
        "write": f"open({c!r}, 'w').write('pwned')",
        "append": f"open({c!r}, 'a').write('pwned')",
        "os_open": f"os.open({c!r}, os.O_WRONLY | os.O_TRUNC)",
        "create": f"open({str(tmp_path / 'new.txt')!r}, 'x')",
        "delete": f"os.remove({c!r})",
        "rename": f"os.rename({c!r}, {c + '.moved'!r})",
        "chmod": f"os.chmod({c!r}, 0o777)",
        "truncate": f"os.truncate({c!r}, 0)",
        "mkdir": f"os.mkdir({str(tmp_path / 'newdir')!r})",
        "rmtree": f"shutil.rmtree({d!r})",
        "link_in": f"os.link({c!r}, 'inside-link')",
        "symlink_then_write": (
            f"os.symlink({c!r}, 'inside-symlink'); open('inside-symlink', 'w').write('pwned')"
        ),
        "escape_by_dotdot": "open('../escaped.txt', 'w').write('pwned')",
        "write_grader": f"open({sandbox.__file__!r}, 'a').write('# pwned')",
    }
    code = "import os, shutil\n" + "".join(_attempt(k, v) for k, v in attempts.items())
    r = run_program(code, isolation="unsafe_subprocess", timeout_s=10)
    assert r.ok, r.stderr
    results = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert set(results) == set(attempts), r.stdout
    refused = {k: v for k, v in results.items() if "outside the program's directory" in v}
    assert refused.keys() == attempts.keys(), results
    assert canary.read_text() == "intact" and (tmp_path / "sub" / "f").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt", "sub"]


def test_fallback_still_lets_a_program_use_its_own_directory_and_temp_files() -> None:
    code = textwrap.dedent("""
        import os, shutil, tempfile
        open('out.txt', 'w').write('mine')
        os.makedirs('a/b', exist_ok=True)
        os.rename('out.txt', 'a/b/out.txt')
        os.chmod('a/b/out.txt', 0o600)
        with tempfile.NamedTemporaryFile('w') as f:
            f.write('scratch')
        open(os.devnull, 'w').write('discarded')
        shutil.rmtree('a')
        print(sorted(os.listdir('.')))
    """)
    r = run_program(code, isolation="unsafe_subprocess", timeout_s=10)
    assert r.ok, r.stderr
    assert r.stdout.strip() == "['solution.py']"


def _in_fresh_process(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_the_first_fallback_grading_warns_once_per_process() -> None:
    r = _in_fresh_process("""
        from ilr_env.grading import check_many, run_program
        from ilr_env.tasks.base import Question
        q = Question(id="add", prompt="", answer="", task="t", kind="code",
                     metadata={"tests": "assert add(1, 2) == 3", "entry_point": "add"})
        code = "def add(a, b):\\n    return a + b\\n"
        # the first fallback grading, in 4 threads
        grades = check_many([q] * 4, [code] * 4, workers=4, isolation="unsafe_subprocess")
        assert all(g.correct for g in grades), grades
        assert run_program("print(2)", isolation="unsafe_subprocess").ok
        print("graded")
    """)
    assert r.returncode == 0 and "graded" in r.stdout, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "WITHOUT bubblewrap" in line]
    assert len(warnings) == 1, r.stderr
    assert "isolation='unsafe_subprocess' was requested" in warnings[0] and "require_bwrap" in warnings[0]


def test_require_bwrap_turns_the_fallback_into_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ILR_SANDBOX", "require_bwrap")
    with pytest.raises(sandbox.SandboxError, match=r"requires bubblewrap \(sandbox: require_bwrap\)"):
        run_program("print(1)", isolation="unsafe_subprocess")
    monkeypatch.setenv("ILR_SANDBOX", "sometimes")
    with pytest.raises(ValueError, match="ILR_SANDBOX='sometimes' is not a sandbox policy"):
        run_program("print(1)", isolation="unsafe_subprocess")


_GRADE_ADD = """
    from ilr_env.grading import check_code, sandbox
    from ilr_env.grading.base import GraderUnavailableError
    from ilr_env.tasks.base import Question
    print("mode:", sandbox.isolation_mode()[0])
    q = Question(id="add", prompt="", answer="", task="t", kind="code",
                 metadata={"tests": "assert add(1, 2) == 3", "entry_point": "add"})
    try:
        print("graded:", check_code(q, "def add(a, b):\\n    return a + b\\n").correct)
    except sandbox.SandboxUnavailableError as e:
        assert isinstance(e, GraderUnavailableError)  # never scored as a wrong answer
        print("refused:", e)
"""


@pytest.mark.parametrize("policy", ["require_bwrap", "auto"])
def test_without_bwrap_code_grading_refuses_with_the_fix(tmp_path: Path, policy: str) -> None:
    """A PATH without bwrap is what a machine without bubblewrap looks like to the sandbox."""
    r = _in_fresh_process(_GRADE_ADD, PATH=str(tmp_path), ILR_SANDBOX=policy)
    assert r.returncode == 0, r.stderr
    assert "mode: refused" in r.stdout and "bwrap is not installed" in r.stdout, r.stdout
    assert "refused: " in r.stdout and "graded:" not in r.stdout
    if policy == "auto":
        assert "ILR_SANDBOX=unsafe_subprocess" in r.stdout and "forge its verdict" in r.stdout
    else:
        assert "requires bubblewrap (sandbox: require_bwrap)" in r.stdout


def test_the_unsafe_opt_in_grades_without_bwrap(tmp_path: Path) -> None:
    r = _in_fresh_process(_GRADE_ADD, PATH=str(tmp_path), ILR_SANDBOX="unsafe_subprocess")
    assert r.returncode == 0, r.stderr
    assert "mode: unsafe_subprocess" in r.stdout and "graded: True" in r.stdout, r.stdout
    assert "WITHOUT bubblewrap" in r.stderr


INSTALL_STEP = Path(__file__).resolve().parents[2] / "experiments" / "scripts" / "install_bwrap.sh"


def test_install_step_says_in_one_line_what_is_missing_when_it_cannot_install(tmp_path: Path) -> None:
    """A PATH with the basic tools but no bwrap, as a non-root user: one warning line, exit 0."""
    (tmp_path / "id").symlink_to("/usr/bin/id")
    env = {"PATH": str(tmp_path), "ILR_INSTALL_AS_NONROOT": "1"}
    r = subprocess.run(
        ["/bin/sh", str(INSTALL_STEP)], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("WARNING: bubblewrap (bwrap) is missing"), r.stdout
    assert (
        "not root" in lines[0] and "cannot be graded" in lines[0] and "apt-get install bubblewrap" in lines[0]
    )
    (tmp_path / "bwrap").symlink_to("/bin/true")  # present: nothing to do, nothing said
    r = subprocess.run(
        ["/bin/sh", str(INSTALL_STEP)], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_code_training_and_the_paper_presets_require_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments.commands.compare import CompareConfig
    from experiments.pipeline.methods import require_bwrap_when_needed
    from ilr_agents.config import ILRConfig

    monkeypatch.setenv("ILR_SANDBOX", "auto")  # restored after the test
    require_bwrap_when_needed(ILRConfig(task="gsm8k"))
    assert sandbox.sandbox_policy() == "auto"
    require_bwrap_when_needed(ILRConfig(task="humaneval"))
    assert sandbox.sandbox_policy() == "require_bwrap"
    monkeypatch.setenv("ILR_SANDBOX", "auto")
    require_bwrap_when_needed(ILRConfig(task="gsm8k", sandbox="require_bwrap"))
    assert sandbox.sandbox_policy() == "require_bwrap"
    for preset in ("paper-qwen7b-qwen14b", "paper-llama8b-qwen7b", "paper-llama8b-qwen14b"):
        config = CompareConfig.from_yaml(preset)
        assert config.training_config(next(iter(config.methods)), config.seeds[0]).sandbox == "require_bwrap"
