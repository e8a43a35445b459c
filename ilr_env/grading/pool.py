"""Pools of long-lived helper processes (sandbox judges, math-verify workers), shared across threads.

One fork-safety rule for all of them: a pool, and every process it started, belongs to the process that
made it. ``PerProcess`` hands each process its own pool; a forked child starts with a fresh, empty one and
never uses, nor closes, its parent's workers (it shares their pipes, so using them would mix two
conversations, and closing them would kill the parent's workers). Only the owner closes a pool at exit.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

W = TypeVar("W")
P = TypeVar("P")


class WorkerPool(Generic[W]):
    """Idle workers reused across calls and threads; at most ``max_workers`` exist at once (callers beyond
    that wait for one to come back), at most ``max_idle`` are kept waiting."""

    def __init__(
        self,
        start: Callable[[], W],
        stop: Callable[[W], None],
        *,
        alive: Callable[[W], bool] = lambda worker: True,
        max_workers: int | None = None,
        max_idle: int | None = None,
    ) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be >= 1 or None, got {max_workers!r}")
        self._start, self._stop, self._alive = start, stop, alive
        self.max_workers = max_workers
        self.max_idle = max_idle if max_idle is not None else max_workers
        self._idle: list[W] = []
        self._count = 0
        self._cond = threading.Condition()

    def acquire(self) -> W:
        """An idle live worker, or a new one (waits while ``max_workers`` are busy)."""
        while True:
            with self._cond:
                while not self._idle and self.max_workers is not None and self._count >= self.max_workers:
                    self._cond.wait()
                if not self._idle:
                    self._count += 1
                    break
                worker = self._idle.pop()
            if self._alive(worker):
                return worker
            self.discard(worker)
        try:
            return self._start()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def release(self, worker: W) -> None:
        """Give a healthy worker back for reuse."""
        with self._cond:
            if self.max_idle is None or len(self._idle) < self.max_idle:
                self._idle.append(worker)
                self._cond.notify()
                return
        self.discard(worker)

    def discard(self, worker: W) -> None:
        """Stop a worker that is broken, overran or is not wanted back."""
        with self._cond:
            self._count -= 1
            self._cond.notify()
        self._stop(worker)

    def size(self) -> int:
        """Workers alive now, busy or idle."""
        return self._count

    def close(self) -> None:
        """Stop every idle worker (busy ones are stopped when they come back and find no room)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            self._stop(worker)


class PerProcess(Generic[P]):
    """``get()`` returns this process's instance of ``make()``, built on first use; a forked child builds its
    own and forgets the parent's without closing it; ``close(instance)`` runs at exit in the owner only."""

    def __init__(self, make: Callable[[], P], close: Callable[[P], None]) -> None:
        self._make, self._close = make, close
        self._forget()
        os.register_at_fork(after_in_child=self._forget)
        atexit.register(self.close)

    def _forget(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork() would never be released
        self._value: P | None = None

    def get(self) -> P:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value

    def close(self) -> None:
        with self._lock:
            value, self._value = self._value, None
        if value is not None:
            self._close(value)
