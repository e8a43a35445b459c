"""Idea3 (the ILR paper's protocol): idea sharing, idea analysis, idea fusion; the fusion is graded.

Who sees what, and why:

* ``share``   — the question and the agent's own mode framing, nothing from peers: ideas are formed
  independently, so the discussion starts from m different views instead of m copies of the first one
  (with alternating turns, an agent also sees what the speakers before it shared).
* ``analyse`` — the question, its own idea and **every** peer's idea (each labelled with the peer's
  name): analysis is about the others' ideas, and with m > 2 nobody is left out.
* ``fuse``    — the question, its own and every peer's idea, its own analysis and every peer's analysis
  (which includes what the peers said about this agent's ideas): fusion is where an agent repairs its
  approach with the criticism it received, so it must see that criticism.

Each stage has a cooperate and a compete wording; an agent gets the one of its own mode.
"""

from __future__ import annotations

from typing import ClassVar

from ilr_env.protocols.base import Protocol, StageView
from ilr_env.protocols.prompts import MODES, STAGE, PromptSet, Schema

STAGES: tuple[str, ...] = ("share", "analyse", "fuse")

_SHARE = STAGE | {"earlier_in_stage"}
_ANALYSE = _SHARE | {"own_idea", "peer_ideas"}
_FUSE = _ANALYSE | {"own_analysis", "peer_analyses"}


class Idea3(Protocol):
    name = "idea3"
    alternating = True
    schema: ClassVar[Schema] = {
        **{("idea3", "share", mode): (_SHARE, frozenset({"question"})) for mode in MODES},
        **{("idea3", "analyse", mode): (_ANALYSE, frozenset({"question", "peer_ideas"})) for mode in MODES},
        **{("idea3", "fuse", mode): (_FUSE, frozenset({"question", "peer_analyses"})) for mode in MODES},
    }

    def stages(self, rounds: int) -> tuple[str, ...]:
        return STAGES

    def template_path(self, stage_index: int, mode: str | None) -> tuple[str, ...]:
        return ("idea3", STAGES[stage_index], mode or "cooperate")

    def stage_fields(self, prompts: PromptSet, view: StageView) -> dict[str, object]:
        k, shown, peers = view.stage_index, view.shown, view.peers
        fields: dict[str, object] = {}
        if k >= 1:
            fields["own_idea"] = shown[0][view.agent]
            fields["peer_ideas"] = self.quote(prompts, peers, shown[0])
        if k >= 2:
            fields["own_analysis"] = shown[1][view.agent]
            fields["peer_analyses"] = self.quote(prompts, peers, shown[1])
        return fields


__all__ = ["STAGES", "Idea3"]
