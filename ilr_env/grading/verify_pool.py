"""math-verify in killable worker processes, so no answer can hang or crash the caller.

math-verify bounds its own time with ``signal.alarm``, which only works on the main thread and cannot
stop sympy stuck inside C code. Here every parse/verify runs in a small pool of forkserver worker
processes; a call that overruns its deadline gets its worker SIGKILLed and replaced (a fork from a
preloaded zygote process, a few ms), and the caller sees ``None`` ("timeout") instead of waiting.
Safe from any thread; parsed golds are cached per worker.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from ilr_env.grading import verify_worker
from ilr_env.grading.base import GraderUnavailableError
from ilr_env.grading.pool import PerProcess, WorkerPool
from ilr_env.grading.verify_worker import parse_gold_text, verify_texts

__all__ = ["VerifyPool", "get_pool", "parse_gold_text", "verify_texts"]


class _Zygote:
    """A preloaded process that forks math-verify workers on request (our own tiny forkserver).

    multiprocessing's forkserver/spawn re-import the caller's ``__main__`` in every worker, which would
    re-run unguarded training scripts; this one only ever runs ``verify_worker.py``. Workers come back as a
    socket (passed with SCM_RIGHTS) plus a pid to SIGKILL.
    """

    def __init__(self) -> None:
        parent, child = socket.socketpair()
        # -I keeps the caller's working directory and PYTHON* variables out, so the caller's import path
        # is handed over explicitly: math-verify must be found wherever this process found it (a
        # PYTHONPATH or --target install included).
        import_path = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", verify_worker.__file__, str(child.fileno()), import_path],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.sock = parent
        self.lock = threading.Lock()

    def fork(self) -> tuple[Connection, int]:
        with self.lock:
            try:
                self.sock.sendall(b"F")
                msg, fds, _, _ = socket.recv_fds(self.sock, 16, 1)
            except OSError:
                msg, fds = b"", []
        if not fds or len(msg) != 8:
            code = self.proc.poll()
            raise GraderUnavailableError(
                "the math-verify worker process did not start"
                + (f" (it exited with code {code})" if code is not None else "")
                + f"; check that `{sys.executable} -c 'import math_verify'` works in this environment"
            )
        return Connection(fds[0]), struct.unpack(">q", msg)[0]

    def close(self) -> None:
        self.sock.close()
        self.proc.kill()
        self.proc.wait()


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
        self.max_workers = max_workers
        self._workers: WorkerPool[_Worker] = WorkerPool(self._start, _Worker.kill, max_workers=max_workers)
        self._zygote: _Zygote | None = None
        self._zygote_lock = threading.Lock()
        self.kills = 0

    def _start(self) -> _Worker:
        with self._zygote_lock:
            if self._zygote is None:
                self._zygote = _Zygote()
            return _Worker(self._zygote)

    def warm(self, n: int | None = None) -> None:
        """Start workers ahead of time (the first start pays the forkserver's import of math-verify)."""
        workers = [self._workers.acquire() for _ in range(min(n or self.max_workers, self.max_workers))]
        for w in workers:
            self._workers.release(w)

    def call(self, op: str, *args: Any, timeout: float) -> tuple[str, Any]:
        """Run ``op`` ("verify" or "rg_score") in a worker: ``("ok", result)``, ``("error", message)`` or
        ``("timeout", None)``; a worker that overruns ``timeout`` seconds is killed."""
        if op not in verify_worker.OPS:
            raise ValueError(f"unknown pool op {op!r}; expected one of {sorted(verify_worker.OPS)}")
        worker = self._workers.acquire()
        try:
            worker.conn.send((op, *args))
            if worker.conn.poll(timeout):
                result = worker.conn.recv()
                self._workers.release(worker)
                return result
        except (EOFError, OSError):
            self._workers.discard(worker)
            return ("error", "worker died")
        self._workers.discard(worker)
        self.kills += 1
        return ("timeout", None)

    def close(self) -> None:
        self._workers.close()
        with self._zygote_lock:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None

    def size(self) -> int:
        return self._workers.size()


_POOL = PerProcess(lambda: VerifyPool(max_workers=max(2, min(4, os.cpu_count() or 2))), VerifyPool.close)


def get_pool() -> VerifyPool:
    """This process's pool (see ``pool.PerProcess``: a forked child gets its own, workers are per process)."""
    return _POOL.get()
