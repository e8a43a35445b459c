"""The verdict type shared by every grader, and the error for a grader that cannot run at all."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Grade:
    """What a grader concluded about one completion.

    ``reward`` is the correctness reward in [0, 1] (1.0 correct; code may give partial credit only where
    documented); ``extracted`` is the parsed final answer (None when nothing could be parsed); ``reason`` is
    a short machine-readable cause such as ``"match"``, ``"mismatch"``, ``"no_answer"``, ``"timeout"``.
    """

    correct: bool
    reward: float
    extracted: str | None
    reason: str
    has_box: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GraderUnavailableError(RuntimeError):
    """The grading machinery itself is broken (e.g. its worker process cannot import math-verify).

    Unlike a grader that fails on one odd answer, this is never scored as a wrong answer: every reward of
    the run would silently be 0.
    """
