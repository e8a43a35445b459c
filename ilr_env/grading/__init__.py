"""Graders: maths answers (math-verify in killable workers), multiple-choice letters, sandboxed code.

``grade(question, completion)`` dispatches on ``question.kind`` and never raises for bad completions
(they are wrong answers); it raises only for a question it cannot grade (unknown kind, missing tests).
"""

from __future__ import annotations

from typing import Any

from ilr_env.grading.answer_format import format_bonus
from ilr_env.grading.base import Grade
from ilr_env.grading.choice import grade_choice
from ilr_env.grading.code import check_code, check_many, extract_code, pass_at_k
from ilr_env.grading.extract import extract_choice_letter, extract_math_answer, last_boxed
from ilr_env.grading.maths import grade_math
from ilr_env.grading.sandbox import SandboxResult, bwrap_available, run_program, run_tests


class UnknownKindError(ValueError):
    """A question whose ``kind`` has no grader."""


def grade(question: Any, completion: str, **opts: Any) -> Grade:
    """Grade one completion. Options: ``timeout`` (s, maths default 1.5, code default 10); code also
    ``memory_mb`` and ``isolation`` ("auto" | "bwrap" | "unsafe_subprocess")."""
    if not isinstance(completion, str):
        completion = "" if completion is None else str(completion)
    kind = getattr(question, "kind", None)
    if kind == "math":
        return grade_math(question, completion, **opts)
    if kind == "choice":
        return grade_choice(question, completion)
    if kind == "code":
        if "timeout" in opts:  # the shared name for the time bound; the sandbox calls it timeout_s
            opts["timeout_s"] = opts.pop("timeout")
        return check_code(question, completion, **opts)
    raise UnknownKindError(
        f"question {getattr(question, 'id', '?')!r} has kind {kind!r}; expected 'math', 'choice' or 'code'"
    )


__all__ = [
    "Grade",
    "SandboxResult",
    "UnknownKindError",
    "bwrap_available",
    "check_code",
    "check_many",
    "extract_choice_letter",
    "extract_code",
    "extract_math_answer",
    "format_bonus",
    "grade",
    "grade_choice",
    "grade_math",
    "last_boxed",
    "pass_at_k",
    "run_program",
    "run_tests",
]
