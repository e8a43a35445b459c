"""The one record every question source produces, so the env, graders and trainers never see raw rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AnswerKind = Literal["math", "choice", "code"]


@dataclass(frozen=True)
class Question:
    """A benchmark question, normalised across sources.

    ``answer`` is the gold answer as text (a LaTeX expression for maths, a letter for multiple choice,
    the reference solution for code); ``kind`` selects the grader; ``metadata`` keeps what a source knows
    beyond that (level, subject, unit tests, entry point, choices, a reasoning-gym entry...).
    """

    id: str
    prompt: str
    answer: str
    task: str
    kind: AnswerKind = "math"
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "answer": self.answer,
            "task": self.task,
            "kind": self.kind,
            "metadata": self.metadata,
        }
