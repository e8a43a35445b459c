"""What a math-verify worker process runs: parsing and verifying untrusted answers, and its zygote loop.

Run by path (``python -I verify_worker.py CONTROL_FD IMPORT_PATH``) as the zygote of ``verify_pool``; it
imports only the standard library and math-verify (found on the caller's import path, IMPORT_PATH), never the
``ilr_env`` package, so workers start small and fast. The functions are also imported in-process where the
inputs are trusted (gold answers in tests).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import sys
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


OPS = {"verify": verify_texts, "rg_score": rg_score}


def _serve(conn: Connection) -> None:
    """Worker loop: one ``(op, *args)`` request at a time until the pipe closes."""
    while True:
        try:
            op, *args = conn.recv()
        except (EOFError, OSError, ValueError):
            return
        try:
            result: tuple[str, Any] = ("ok", OPS[op](*args))
        except Exception as exc:  # noqa: BLE001
            result = ("error", f"{type(exc).__name__}: {exc}"[:300])
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


def zygote_main(control_fd: int) -> None:
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


if __name__ == "__main__":
    if len(sys.argv) > 2:  # the caller's import path (see verify_pool._Zygote)
        sys.path.extend(p for p in sys.argv[2].split(os.pathsep) if p not in sys.path)
    zygote_main(int(sys.argv[1]))
