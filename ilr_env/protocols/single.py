"""One agent answers alone (the only protocol for m = 1, and the paper's test-time setting).

Its one stage shows exactly ``single_prompt(question)``, the plain test-time prompt, so evaluation and the
single-agent baseline cannot drift apart from what a ``protocol="single"`` env shows. It has no peers and
no framing: modes are not drawn and infos report ``mode=None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ilr_env.protocols.base import Messages, Protocol
from ilr_env.protocols.prompts import PromptSet, Schema, load_prompts
from ilr_env.tasks.base import Question


class Single(Protocol):
    name = "single"
    framed = False
    min_agents = 1
    schema: ClassVar[Schema] = {
        ("single", "answer"): (frozenset({"question", "answer_format"}), frozenset({"question"})),
    }

    def stages(self, rounds: int) -> tuple[str, ...]:
        return ("answer",)

    def template_path(self, stage_index: int, mode: str | None) -> tuple[str, ...]:
        return ("single", "answer")


def single_prompt(question: Question, prompts: Mapping[str, Any] | PromptSet | None = None) -> Messages:
    """The plain single-agent test-time prompt (the paper evaluates every trained agent alone)."""
    ps = load_prompts(prompts)
    user = ps.render(
        ("single", "answer"), question=question.prompt, answer_format=ps.answer_format(question.kind)
    )
    return [{"role": "system", "content": ps.system(None)}, {"role": "user", "content": user}]


__all__ = ["Single", "single_prompt"]
