"""The judge's verdict against programs that attack the judge itself rather than the host.

- Shadowing: a wrong program that also defines the built-ins or harness names the tests use is graded
  wrong on every HumanEval/MBPP task where that could matter (the tests see the true built-ins).
- Replies the judge cannot decode (nested 200k deep, over the size limit, 200k hash-colliding values),
  a judge stuck in C code past its deadline, and a judge killed mid-run are graded failures, within the
  deadline, never exceptions out of ``grade()``. Only a grader that cannot run raises, and it raises the
  typed ``GraderUnavailableError``.
- ``timeout_s`` is honoured, with or without bubblewrap.
"""

from __future__ import annotations

import ast
import builtins
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilr_env import grade, load_questions
from ilr_env.grading import check_many, sandbox
from ilr_env.grading.base import GraderUnavailableError
from ilr_env.grading.pool import PerProcess, WorkerPool
from ilr_env.tasks.base import Question

ADD = Question(
    id="add",
    prompt="",
    answer="",
    task="security",
    kind="code",
    metadata={"tests": "assert add(1, 2) == 3\nassert add(2, 2) == 4\n", "entry_point": "add"},
)
MODES = ["auto", "unsafe_subprocess"]  # auto is bwrap where it works; the fallback must hold too


def _shadow_targets() -> list[tuple[Question, list[str]]]:
    """Every HumanEval/MBPP question whose tests name a built-in, with the names a program could shadow:
    those built-ins and the names the trusted prompt and tests define themselves (check, candidate, ...)."""
    try:
        qs = load_questions("humaneval")
        for split in ("test", "train", "validation"):
            qs += load_questions("mbpp", split)
    except (LookupError, OSError) as exc:
        pytest.skip(f"benchmarks not available offline: {exc}")
    targets = []
    for q in qs:
        trusted = str(q.metadata.get("prompt") or "") + "\n" + str(q.metadata["tests"])
        names = {n.id for n in ast.walk(ast.parse(str(q.metadata["tests"]))) if isinstance(n, ast.Name)}
        used = sorted(n for n in names if hasattr(builtins, n) and not n.startswith("__"))
        if used:
            defined = {n.name for n in ast.parse(trusted).body if isinstance(n, ast.FunctionDef)}
            defined |= {"check", "candidate"}
            targets.append((q, sorted((set(used) | defined) - {q.metadata["entry_point"]})))
    return targets


def _hostile(entry: str, value: str, shadows: list[str]) -> str:
    lines = [f"def {entry}(*args, **kwargs):\n    return {value}\n"]
    lines += [f"def {name}(*args, **kwargs):\n    return {value}\n" for name in shadows]
    return "\n".join(lines)


@pytest.mark.parametrize("isolation", MODES)
def test_shadowing_builtins_and_harness_names_never_rescues_a_wrong_program(
    isolation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A constant answer plus functions named like the built-ins the tests call (``abs`` returning 0 makes
    ``abs(got - want) < 1e-6`` true; ``range`` returning [] skips a loop of asserts)."""
    monkeypatch.setenv("ILR_SANDBOX", "auto")
    targets = _shadow_targets()
    assert len(targets) >= 20, len(targets)
    humaneval = [q.id for q, _ in targets if q.id.startswith("HumanEval/")]
    assert {"HumanEval/4", "HumanEval/32", "HumanEval/38"} <= set(humaneval), humaneval
    questions, programs, kinds = [], [], []
    for q, shadows in targets:
        entry = q.metadata["entry_point"]
        for value in ("0", "[]", "True", "''"):
            questions += [q, q]
            programs += [_hostile(entry, value, []), _hostile(entry, value, shadows)]
            kinds += [(q.id, value, "plain"), (q.id, value, "shadowed")]
    grades = check_many(questions, programs, workers=2, timeout_s=20, isolation=isolation)
    verdicts = {kind: g.correct for kind, g in zip(kinds, grades)}
    rescued = [
        (qid, value)
        for (qid, value, how), ok in verdicts.items()
        if how == "shadowed" and ok and not verdicts[(qid, value, "plain")]
    ]
    assert not rescued, f"shadowing turned wrong constants into passes: {rescued}"


@pytest.mark.parametrize("isolation", MODES)
def test_harness_tricks_fail(isolation: str) -> None:
    """A rigged ``__eq__``, a redefined ``check``/``candidate``/``AssertionError``, and the program's own
    ``Node``-style class standing in for a built-in type: all graded wrong."""
    programs = {
        "eq": "class Y:\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return Y()\n",
        "harness": "def check(*a):\n    pass\ndef candidate(*a):\n    return 3\n"
        "class AssertionError(Exception):\n    pass\ndef add(a, b):\n    return 0\n",
        "int_class": "class int:\n    def __eq__(self, o):\n        return True\n"
        "def add(a, b):\n    return int()\n",
    }
    grades = check_many([ADD] * len(programs), list(programs.values()), isolation=isolation)
    assert not any(g.correct for g in grades), list(zip(programs, grades))


def _raw_reply(payload: str, *, announce: int | None = None) -> str:
    """A program whose ``add`` writes a hand-made protocol frame on every pipe it holds, then exits, so the
    judge reads exactly that frame as its reply."""
    return textwrap.dedent(f"""
        import os, struct
        def add(a, b):
            data = ({payload}).encode()
            frame = struct.pack(">I", {announce if announce is not None else "len(data)"}) + data
            for fd in range(3, 64):
                try:
                    if os.fstat(fd).st_mode & 0o170000 == 0o010000:  # a pipe
                        os.write(fd, frame)
                except OSError:
                    pass
            os._exit(0)
    """)


COLLIDING = '\'{"ok": true, "value": ["S", [\' + \',\'.join(\'["i", "%d"]\' % (k * (2**61 - 1)) for k in range(200000)) + \']]}\''  # noqa: E501


@pytest.mark.parametrize("isolation", MODES)
def test_undecodable_replies_are_graded_failures_within_the_deadline(isolation: str) -> None:
    cases = {
        "deep": (_raw_reply("'{\"ok\": true, \"value\": ' + '[' * 200000 + ']' * 200000 + '}'"), "failed"),
        "oversized": (_raw_reply("'x'", announce=1 << 30), "failed"),
        "truncated": (_raw_reply("'{\"ok\": tr'"), "failed"),
        "not_json": (_raw_reply("'\\xff\\xfe garbage'"), "failed"),
        "colliding_hashes": (_raw_reply(COLLIDING), "timeout"),
    }
    timeout_s = 3.0
    for name, (program, status) in cases.items():
        start = time.monotonic()
        g = grade(ADD, program, timeout=timeout_s, isolation=isolation)
        took = time.monotonic() - start
        assert not g.correct and g.reason.startswith(status), (name, g.reason)
        if status == "failed":  # the judge read and refused the reply: it did not die on it
            assert "broke the protocol" in g.reason, (name, g.reason)
        assert took < timeout_s + 5, (name, took)


def test_a_judge_stuck_in_c_code_is_stopped_at_the_deadline() -> None:
    """The trusted tests build a set from 200k hash-colliding ints the program returned: minutes of C code
    the judge cannot interrupt. The grader stops the judge at its deadline and grades a timeout."""
    q = Question(
        id="collide",
        prompt="",
        answer="",
        task="security",
        kind="code",
        metadata={"tests": "assert len(set(f())) == 1\n", "entry_point": "f"},
    )
    program = "def f():\n    return [k * (2 ** 61 - 1) for k in range(200000)]\n"
    start = time.monotonic()
    g = grade(q, program, timeout=2)
    took = time.monotonic() - start
    assert not g.correct and g.reason.startswith("timeout"), g.reason
    assert took < 10, took  # the program's 2 s, the judge's 5 s grace, and slack for a loaded machine
    assert grade(ADD, "def add(a, b):\n    return a + b\n").correct  # the pool recovered


def _judge_pids() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"judge.py" in cmd:
            found.append(int(entry))
    return found


def test_a_killed_judge_is_a_graded_failure_when_the_grader_still_works() -> None:
    slow = "import time\ndef add(a, b):\n    time.sleep(8)\n    return a + b\n"
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(g=grade(ADD, slow, timeout=20)))
    worker.start()
    time.sleep(2)
    for pid in _judge_pids():
        os.kill(pid, signal.SIGKILL)
    worker.join(timeout=60)
    g = outcome["g"]
    assert not g.correct and "the judge died while checking this program" in g.reason, g  # type: ignore[attr-defined]


FAKE_JUDGE = """
import json, sys
nonce = json.loads(sys.stdin.readline())["nonce"]
if {how!r} != "dies_at_once":
    print("ILR-STARTED " + nonce, flush=True)
if {how!r} == "sandbox_fault":
    verdict = {{"status": "error", "detail": "the program's cgroup could not be joined", "returncode": None,
               "stdout": "", "stderr": "", "truncated": False, "duration_s": 0.0}}
    print("ILR-VERDICT " + nonce + " " + json.dumps(verdict), flush=True)
    sys.stdin.readline()
sys.exit(3)
"""


@pytest.mark.parametrize("how", ["dies_at_once", "dies_while_running", "sandbox_fault"])
def test_a_grader_that_cannot_run_raises_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A judge that dies on every job (before or after starting the program), or reports that it could not
    set the sandbox up, is the grader's failure: ``grade()`` raises GraderUnavailableError, never a 0."""
    fake = tmp_path / "judge.py"
    fake.write_text(FAKE_JUDGE.format(how=how))
    monkeypatch.setattr(sandbox, "_JUDGE", fake)
    monkeypatch.setattr(sandbox, "_JUDGES", PerProcess(sandbox._make_judges, WorkerPool.close))
    with pytest.raises(GraderUnavailableError, match="judge|sandbox could not be set up"):
        grade(ADD, "def add(a, b):\n    return a + b\n")


@pytest.mark.parametrize("isolation", MODES)
def test_timeout_s_is_honoured(isolation: str) -> None:
    """A looping program with ``timeout_s=1`` is a timeout after about a second, not the 10 s default, and
    never a pass; runs without bubblewrap too (``unsafe_subprocess``)."""
    for program in ("def add(a, b):\n    while True:\n        pass\n", "while True:\n    pass\n"):
        start = time.monotonic()
        g = check_many([ADD], [program], timeout_s=1, isolation=isolation)[0]
        took = time.monotonic() - start
        assert not g.correct and g.reason.startswith("timeout"), g
        assert took < 5, took


def test_sandbox_errors_are_grader_errors() -> None:
    assert issubclass(sandbox.SandboxError, GraderUnavailableError)
    assert issubclass(sandbox.SandboxUnavailableError, GraderUnavailableError)


FRAGMENTS = [
    "def add(a, b):\n",
    "    return a + b\n",
    "    return [[[[0]]]]\n",
    "    return {1: {2}}\n",
    "    return add\n",
    "    return object()\n",
    "    raise SystemExit\n",
    "import os; os._exit(0)\n",
    "    yield 3\n",
    "class add:\n    pass\n",
    "```python\n",
    "```\n",
    "\x00",
    "\udcff",
    "(" * 300,
    "abs = len\n",
    "    return 10 ** 5000\n",
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=40), max_size=8).map("".join))
def test_no_completion_makes_grade_raise(completion: str) -> None:
    g = grade(ADD, completion, timeout=3)
    assert g.correct == (g.reward == 1.0) and isinstance(g.reason, str)
