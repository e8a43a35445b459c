"""Multi-agent debate (Du et al. 2023): R rounds; the last round's answer is graded.

* ``round_0`` — the question alone; each agent answers.
* ``round_r`` — the question, its own round r−1 answer and every peer's round r−1 answer. Older rounds
  are not repeated: they are what the r−1 answers already responded to, and prompts stay bounded.

The cooperate/compete framing is only in the system message: debate's wording is the same for both.
"""

from __future__ import annotations

from typing import ClassVar

from ilr_env.protocols.base import Protocol, StageView
from ilr_env.protocols.prompts import STAGE, PromptSet, Schema

_UPDATE = STAGE | {"own_previous", "peer_previous", "round", "num_rounds"}


class Debate(Protocol):
    name = "debate"
    schema: ClassVar[Schema] = {
        ("debate", "first"): (STAGE, frozenset({"question"})),
        ("debate", "update"): (_UPDATE, frozenset({"question", "peer_previous"})),
    }

    def stages(self, rounds: int) -> tuple[str, ...]:
        return tuple(f"round_{r}" for r in range(rounds))

    def template_path(self, stage_index: int, mode: str | None) -> tuple[str, ...]:
        return ("debate", "first" if stage_index == 0 else "update")

    def stage_fields(self, prompts: PromptSet, view: StageView) -> dict[str, object]:
        k = view.stage_index
        if k == 0:
            return {}
        return {
            "own_previous": view.shown[k - 1][view.agent],
            "peer_previous": self.quote(prompts, view.peers, view.shown[k - 1]),
            "round": k + 1,
            "num_rounds": view.num_stages,
        }


__all__ = ["Debate"]
