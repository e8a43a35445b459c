"""math-verify in killable worker processes, so no answer can hang or crash the caller.

math-verify bounds its own time with ``signal.alarm``, which only works on the main thread and cannot
stop sympy stuck inside C code. Here every parse/verify runs in a small pool of forkserver worker
processes; a call that overruns its deadline gets its worker SIGKILLed and replaced (a fork from a
preloaded zygote process, a few ms), and the caller sees ``None`` ("timeout") instead of waiting.
Safe from any thread; parsed golds are cached per worker.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import Any


def parse_gold_text(gold: str) -> list[Any]:
    """Parse a gold answer the way math-verify users do: inline maths first, then boxed, then raw text."""
    from math_verify import parse

    if re.search(r"(?<!\\)\$", gold) or "\\boxed" in gold:  # already delimited (an escaped \$ is not)
        return parse(gold, parsing_timeout=None)  # type: ignore[arg-type]
    for wrapped in (f"${gold}$", f"\\boxed{{{gold}}}", gold):
        parsed = parse(wrapped, parsing_timeout=None)  # type: ignore[arg-type]
        if parsed:
            return parsed
    return []


@lru_cache(maxsize=4096)
def _cached_gold(gold: str) -> list[Any]:
    return parse_gold_text(gold)


def verify_texts(gold: str, pred_text: str) -> tuple[bool, str | None]:
    """math-verify's verdict for a gold answer and a prediction text (any text math-verify can parse).

    Runs in the caller's thread with math-verify's own timeouts switched off: only call it where the
    time is bounded from outside (a worker process) or the inputs are trusted.
    """
    from math_verify import parse, verify

    gold_parsed = _cached_gold(gold)
    pred = parse(pred_text, parsing_timeout=None)  # type: ignore[arg-type]
    shown = str(pred[-1]) if pred else None
    if not gold_parsed or not pred:
        return False, shown
    return bool(verify(gold_parsed, pred, timeout_seconds=None)), shown


def rg_score(dataset: str, answer: str, entry: dict[str, Any]) -> float:
    """reasoning-gym's own scoring rule for one of its entries (in [0, 1])."""
    import reasoning_gym

    return float(reasoning_gym.get_score_answer_fn(dataset)(answer, entry))


_OPS = {"verify": verify_texts, "rg_score": rg_score}


def _serve(conn: Connection) -> None:
    """Worker loop: one ``(op, *args)`` request at a time until the pipe closes."""
    while True:
        try:
            op, *args = conn.recv()
        except (EOFError, OSError, ValueError):
            return
        try:
            result: tuple[str, Any] = ("ok", _OPS[op](*args))
        except Exception as exc:  # noqa: BLE001
            result = ("error", f"{type(exc).__name__}: {exc}"[:300])
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


class _Zygote:
    """A preloaded process that forks math-verify workers on request (our own tiny forkserver).

    multiprocessing's forkserver/spawn re-import the caller's ``__main__`` in every worker, which would
    re-run unguarded training scripts; this one only ever runs this file. Workers come back as a socket
    (passed with SCM_RIGHTS) plus a pid to SIGKILL.
    """

    def __init__(self) -> None:
        parent, child = socket.socketpair()
        code = f"import runpy; runpy.run_path({__file__!r}, run_name='__ilr_zygote__')"
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code, str(child.fileno())],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.sock = parent
        self.lock = threading.Lock()

    def fork(self) -> tuple[Connection, int]:
        with self.lock:
            self.sock.sendall(b"F")
            msg, fds, _, _ = socket.recv_fds(self.sock, 16, 1)
        if not fds or len(msg) != 8:
            raise RuntimeError("the math-verify zygote did not start a worker")
        return Connection(fds[0]), struct.unpack(">q", msg)[0]

    def close(self) -> None:
        self.sock.close()
        self.proc.kill()
        self.proc.wait()


def _zygote_main(control_fd: int) -> None:
    import logging

    import math_verify  # noqa: F401

    # Its "timeout is disabled" warning is expected here: the deadline is the pool's SIGKILL.
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    verify_texts("\\frac{1}{2}", "\\boxed{0.5}")  # pulls in sympy's lazily imported parts
    _cached_gold.cache_clear()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished workers
    control = socket.socket(fileno=control_fd)
    while control.recv(1) == b"F":
        worker_end, zygote_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            control.close()
            worker_end.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _serve(Connection(zygote_end.detach()))
            os._exit(0)
        zygote_end.close()
        socket.send_fds(control, [struct.pack(">q", pid)], [worker_end.fileno()])
        worker_end.close()


class _Worker:
    def __init__(self, zygote: _Zygote) -> None:
        self.conn, self.pid = zygote.fork()

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.conn.close()


class VerifyPool:
    """A lazily grown pool of math-verify worker processes with a hard per-call deadline."""

    def __init__(self, max_workers: int = 2) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self._zygote: _Zygote | None = None
        self._idle: list[_Worker] = []
        self._count = 0
        self._cond = threading.Condition()
        self._pid = os.getpid()
        self.kills = 0

    def _acquire(self) -> _Worker:
        with self._cond:
            while not self._idle and self._count >= self.max_workers:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            with self._cond:
                if self._zygote is None:
                    self._zygote = _Zygote()
            return _Worker(self._zygote)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker | None) -> None:
        with self._cond:
            if worker is None:
                self._count -= 1
            else:
                self._idle.append(worker)
            self._cond.notify()

    def warm(self, n: int | None = None) -> None:
        """Start workers ahead of time (the first start pays the forkserver's import of math-verify)."""
        workers = [self._acquire() for _ in range(min(n or self.max_workers, self.max_workers))]
        for w in workers:
            self._release(w)

    def call(self, op: str, *args: Any, timeout: float) -> tuple[str, Any]:
        """Run ``op`` ("verify" or "rg_score") in a worker: ``("ok", result)``, ``("error", message)`` or
        ``("timeout", None)``; a worker that overruns ``timeout`` seconds is killed."""
        if op not in _OPS:
            raise ValueError(f"unknown pool op {op!r}; expected one of {sorted(_OPS)}")
        worker = self._acquire()
        try:
            worker.conn.send((op, *args))
            if worker.conn.poll(timeout):
                result = worker.conn.recv()
                self._release(worker)
                return result
        except (EOFError, OSError):
            worker.kill()
            self._release(None)
            return ("error", "worker died")
        worker.kill()
        self.kills += 1
        self._release(None)
        return ("timeout", None)

    def close(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for w in idle:
            w.kill()
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None

    def size(self) -> int:
        return self._count


_POOL: VerifyPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> VerifyPool:
    """The process-wide pool (a new one after fork, since workers belong to the process that made them)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._pid != os.getpid():
            _POOL = VerifyPool(max_workers=max(2, min(4, os.cpu_count() or 2)))
            atexit.register(_POOL.close)
        return _POOL


if __name__ == "__ilr_zygote__":
    _zygote_main(int(sys.argv[1]))
