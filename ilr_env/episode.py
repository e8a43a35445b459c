"""What one episode accumulates, and its readable transcript."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ilr_env.grading import Grade
from ilr_env.tasks.base import Question

Messages = list[dict[str, str]]


@dataclass
class Episode:
    """Everything one episode accumulates; ``reset`` replaces it whole, so nothing leaks across episodes."""

    question: Question
    modes: dict[str, str | None]
    difficulty: dict[str, float | None]
    p_correct: dict[str, float | None]
    stage_index: int = 0
    turn_index: int = 0
    prompts: list[dict[str, Messages]] = field(default_factory=list)  # per stage: agent -> prompt it acted on
    shown: list[dict[str, str]] = field(default_factory=list)  # per stage: agent -> message, in turn order
    answers: dict[str, str] = field(default_factory=dict)  # each agent's final-stage action
    rewards: dict[str, float] = field(default_factory=dict)
    grades: dict[str, Grade] = field(default_factory=dict)
    done: bool = False

    def transcript(
        self, protocol: str, prompts_version: str, agents: Sequence[str], stages: Sequence[str]
    ) -> str:
        """The episode so far as readable text: question, modes, every message, grades."""
        q = self.question
        lines = [f"=== {q.task} · {q.id} · protocol={protocol} · prompts={prompts_version} ===", q.prompt, ""]
        for a in agents:
            extra = ""
            if self.difficulty[a] is not None:
                extra = f" D_q={self.difficulty[a]:+.3f}"
            if self.p_correct[a] is not None:
                extra += f" P={self.p_correct[a]:.3f}"
            lines.append(f"{a}: mode={self.modes[a]}{extra}")
        for k, said in enumerate(self.shown):
            lines += ["", f"--- stage {k + 1}/{len(stages)}: {stages[k]} ---"]
            for a, text in said.items():  # in the order they were written
                lines += [f"[{a}]", text, ""]
        if self.done:
            lines.append("--- result ---")
            for a in agents:
                g = self.grades[a]
                lines.append(
                    f"{a}: extracted={g.extracted!r} correct={g.correct} reward={self.rewards[a]:.3f} "
                    f"({g.reason})"
                )
        return "\n".join(lines)


__all__ = ["Episode", "Messages"]
