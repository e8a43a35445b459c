"""The sandbox's building blocks: the value codec both sides share, and the worker pool with its one
fork-safety rule (used by the code sandbox's judges and by the math-verify workers)."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
import textwrap
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilr_env.grading.pool import WorkerPool
from ilr_env.grading.standalone import codec

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.complex_numbers(allow_nan=False),
    st.text(),
    st.binary(),
    st.sampled_from(sorted(codec.TYPES.values(), key=repr)),
)
hashable = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner), max_leaves=8)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner)
        | st.tuples(inner, inner)
        | st.dictionaries(hashable, inner)
        | st.sets(hashable)
        | st.frozensets(hashable)
    ),
    max_leaves=20,
)


def _no_handles(rest: list) -> None:
    raise AssertionError(f"no handle expected, got {rest}")


def _refuse(x: object) -> list:
    raise TypeError(type(x).__name__)


def _same(a: object, b: object) -> bool:
    """Equal and of exactly the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    return a == b


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_plain_values_cross_the_pipe_unchanged(value: object) -> None:
    wire = json.loads(json.dumps(codec.encode(value, _refuse)))
    assert _same(codec.decode(wire, _no_handles), value)


def test_subclasses_arrive_as_their_plain_value_and_other_objects_as_handles() -> None:
    class AlwaysEqual(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    kept: list[object] = []

    def opaque(x: object) -> list:
        kept.append(x)
        return ["h", len(kept) - 1, type(x).__name__]

    wire = json.loads(json.dumps(codec.encode([AlwaysEqual(3), object()], opaque)))
    decoded = codec.decode(wire, lambda rest: ("handle", rest[0], rest[1]))
    assert type(decoded[0]) is int and decoded[0] == 3 and decoded[0] != 4
    assert decoded[1] == ("handle", 0, "object")


@pytest.mark.parametrize(
    "wire",
    [
        "n",
        [],
        ["i", 5],
        ["i", "5x"],
        ["i", "9" * 5000],
        ["f", "1e5000x"],
        ["s", 5],
        ["b", 1],
        ["d", [["s", "k"]]],
        ["S", [["l", []]]],
        ["z", "?"],
        ["l", ["n"]],
        ["T", "eval"],
        ["T", "__import__"],
        ["T", 5],
        ["T"],
    ],
)
def test_malformed_values_are_refused(wire: object) -> None:
    with pytest.raises(codec.MalformedValue):
        codec.decode(wire, _no_handles)


def test_nesting_and_message_size_are_bounded() -> None:
    deep: object = ["n"]
    for _ in range(codec.MAX_DEPTH + 1):
        deep = ["l", [deep]]
    with pytest.raises(codec.MalformedValue):
        codec.decode(deep, _no_handles)
    with pytest.raises(codec.MalformedValue, match="over the"):
        codec.message_size(codec.HEADER.pack(codec.MAX_MESSAGE + 1))
    assert codec.message_size(codec.frame({"ok": True})[:4]) == len(b'{"ok": true}')


class Counter:
    """Stands in for a worker process: counts starts and stops."""

    def __init__(self) -> None:
        self.started = 0
        self.stopped: list[int] = []
        self.lock = threading.Lock()

    def start(self) -> int:
        with self.lock:
            self.started += 1
            return self.started

    def stop(self, worker: int) -> None:
        self.stopped.append(worker)


def test_pool_reuses_idle_workers_and_bounds_how_many_exist() -> None:
    c = Counter()
    pool = WorkerPool(c.start, c.stop, max_workers=2)
    a, b = pool.acquire(), pool.acquire()
    assert (a, b) == (1, 2) and pool.size() == 2
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
    waiter.start()
    pool.release(a)  # the waiting caller gets this one; no third worker is started
    waiter.join(timeout=30)
    assert got == [1] and c.started == 2
    pool.discard(b)  # broken: stopped and not reused
    assert c.stopped == [2] and pool.size() == 1
    assert pool.acquire() == 3


def test_pool_replaces_dead_workers_and_close_stops_the_idle_ones() -> None:
    c = Counter()
    dead = {1}
    pool = WorkerPool(c.start, c.stop, alive=lambda w: w not in dead, max_idle=1)
    first, second = pool.acquire(), pool.acquire()
    pool.release(first)
    pool.release(second)  # over max_idle: stopped
    assert c.stopped == [2]
    assert pool.acquire() == 3  # worker 1 died while idle: stopped and replaced
    assert c.stopped == [2, 1]
    pool.release(3)
    pool.close()
    assert c.stopped == [2, 1, 3] and pool.size() == 0


def test_a_forked_child_gets_its_own_pool_and_leaves_the_parents_workers_alone() -> None:
    """The one fork-safety rule, with real processes: the child never uses nor (at its exit) closes the
    parent's workers, and the parent's workers keep working after the child is gone."""
    script = textwrap.dedent("""
        import os, subprocess, sys
        from ilr_env.grading.pool import PerProcess, WorkerPool

        def start():
            command = [sys.executable, "-c", "import sys; sys.stdin.read()"]
            return subprocess.Popen(command, stdin=subprocess.PIPE)

        def stop(p):
            p.kill(); p.wait()

        pools = PerProcess(lambda: WorkerPool(start, stop), WorkerPool.close)
        worker = pools.get().acquire()
        pools.get().release(worker)
        pid = os.fork()
        if pid == 0:
            mine = pools.get()
            assert mine.size() == 0, "the child saw the parent's workers"
            child_worker = mine.acquire()
            assert child_worker.pid != worker.pid
            mine.release(child_worker)
            sys.exit(0)  # runs atexit: closes the child's pool only
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert worker.poll() is None, "the child's exit killed the parent's worker"
        assert pools.get().acquire() is worker
        print("ok")
    """)
    r = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


BUILTIN_NAMES = sorted(name for name in dir(builtins) if not name.startswith("_"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(BUILTIN_NAMES), min_size=1, max_size=5), st.sampled_from(["f", "check", "Node"])
)
def test_test_globals_resolve_builtins_before_the_program(shadowed: list[str], own: str) -> None:
    """Whatever built-in names a program defines, the trusted tests see the true built-ins; a name nothing
    else defines is the program's, and one the tests define is theirs."""
    from ilr_env.grading.standalone import judge

    ns = judge.TestGlobals(None, [*shadowed, own, "helper"])  # type: ignore[arg-type]
    code = "seen = {n: eval(n) for n in NAMES}\ndef helper():\n    return 'trusted'\nmine = " + own
    ns["NAMES"] = shadowed
    exec(compile(code, "tests.py", "exec"), ns)  # noqa: S102
    assert all(ns["seen"][n] is getattr(builtins, n) for n in shadowed)
    assert isinstance(ns["mine"], judge.Remote) and ns["mine"].__name__ == own
    assert ns["helper"]() == "trusted"
