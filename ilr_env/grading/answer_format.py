"""The format term: one rule for the env's final reward and for training's raw reward.

A bonus for a non-empty, closed answer box (``Grade.has_box``, decided by the grader that read the reply)
in a reply that ended on its own. A cut reply earns nothing: on CPU runs a bonus for any box taught a small
model to open empty boxes at the token limit. Reading the box from the grade means a reply is parsed once.
"""

from __future__ import annotations

from ilr_env.grading.base import Grade


def format_bonus(grade: Grade | None, truncated: bool, weight: float) -> float:
    """``weight`` when the graded reply put its answer in a box and was not cut at the token limit."""
    if weight <= 0 or grade is None or truncated:
        return 0.0
    return float(weight) if grade.has_box else 0.0
