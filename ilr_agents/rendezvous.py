"""m threads that take turns in a fixed order and meet so that one of them can work for all.

Only the thread holding the token runs, in the order of ``names``. ILR's trainers need this: every
process must issue its collectives (DDP broadcasts, all-reduces, metric gathers) in the same order, and
threads running concurrently interleave them differently per rank, which deadlocks or corrupts DDP
(measured with two gloo processes). It also makes a single-process run deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class RendezvousError(RuntimeError):
    """A peer thread failed, or the meeting was aborted; this thread stops too."""


class Rendezvous:
    """The token (``wait_turn``/``pass_turn``), the meeting (``meet``) and ``abort`` for m named threads."""

    def __init__(self, names: list[str], timeout: float | None = 3600.0) -> None:
        self.names = list(names)
        self.barrier = threading.Barrier(len(self.names), timeout=timeout)
        self._cv = threading.Condition()
        self._turn = 0
        self._aborted = False
        self._values: dict[str, Any] = {}
        self._result: Any = None

    def wait_turn(self, name: str) -> None:
        """Block until it is ``name``'s turn; raises once any thread aborted."""
        with self._cv:
            self._cv.wait_for(
                lambda: self._aborted or (self._turn < len(self.names) and self.names[self._turn] == name)
            )
            if self._aborted:
                raise RendezvousError("a peer thread failed; stopping this one too")

    def pass_turn(self) -> None:
        with self._cv:
            self._turn += 1
            self._cv.notify_all()

    def abort(self) -> None:
        """Wake every waiting thread with a RendezvousError (a thread failed, or the user interrupted)."""
        with self._cv:
            self._aborted = True
            self._cv.notify_all()
        self.barrier.abort()

    def meet(self, name: str, value: Any, lead: Callable[[dict[str, Any]], Any]) -> Any:
        """Called by the thread holding the token: hand over ``value`` and wait for every thread; one of
        them runs ``lead({name: value})`` for all; each leaves with its result, in turn order again."""
        self._values[name] = value
        self.pass_turn()
        try:
            if self.barrier.wait() == 0:
                try:
                    self._result = lead(dict(self._values))
                finally:
                    with self._cv:
                        self._turn = 0
            self.barrier.wait()
        except threading.BrokenBarrierError as exc:
            raise RendezvousError("a peer thread failed while the threads met") from exc
        self.wait_turn(name)
        return self._result
