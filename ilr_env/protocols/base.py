"""What a protocol is, and how one is registered for ``make(..., protocol=name)``.

A protocol owns the shape of a discussion: its stages (one env step each, or one per agent with
alternating turns; the last stage's reply is graded), the templates of its prompts.yaml section, and
who sees what at each stage (``stage_fields``: the placeholders a stage's template is filled with, from
what the agents have written so far). The env owns everything else — episodes, modes, grading, spaces —
so a new protocol is a subclass registered with ``register_protocol`` and never an edit of the env.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ilr_env.errors import ILRConfigError
from ilr_env.protocols import registry
from ilr_env.protocols.prompts import MODES, PromptSet, Schema

Messages = list[dict[str, str]]
TurnPlan = list[tuple[int, tuple[str, ...]]]
"""(stage index, the agents that write in this step) for every step of an episode."""


@dataclass(frozen=True)
class StageView:
    """What the env knows when it builds one agent's prompt for one stage."""

    agent: str
    agents: tuple[str, ...]  # every agent of the env, in name order
    stage_index: int
    num_stages: int
    shown: Sequence[Mapping[str, str]]  # per stage so far: agent -> message as relayed, in writing order
    question: str  # the question text, already cleaned for display
    answer_format: str
    mode: str | None  # this agent's mode; None for protocols without framing

    @property
    def peers(self) -> list[str]:
        return [a for a in self.agents if a != self.agent]


class Protocol(ABC):
    """One way for m agents to discuss a question; subclasses fill in the class attributes and methods.

    ``framed``: agents have peers and a cooperate/compete framing (modes are drawn); ``min_agents``:
    the fewest agents it makes sense with; ``alternating``: whether ``turn_order="alternating"`` is
    defined (each stage template then shows what earlier speakers wrote, ``{earlier_in_stage}``);
    ``schema``: its template paths (under its own section, named after it) with their allowed and
    required placeholders; ``templates``: the section itself, for a protocol whose wording is not in
    this package's prompts.yaml.
    """

    name: ClassVar[str]
    framed: ClassVar[bool] = True
    min_agents: ClassVar[int] = 2
    alternating: ClassVar[bool] = False
    schema: ClassVar[Schema]
    templates: ClassVar[Mapping[str, Any] | None] = None

    @abstractmethod
    def stages(self, rounds: int) -> tuple[str, ...]:
        """Stage names in order (``rounds`` is the env's ``debate_rounds``, for protocols that repeat)."""

    @abstractmethod
    def template_path(self, stage_index: int, mode: str | None) -> tuple[str, ...]:
        """The prompts.yaml path of the user prompt of a stage, for an agent in ``mode``."""

    def stage_fields(self, prompts: PromptSet, view: StageView) -> dict[str, object]:
        """The placeholders of the stage's template that come from the discussion so far."""
        return {}

    def final_stage(self, rounds: int) -> str:
        """The stage whose reply is graded (and the only one trained)."""
        return self.stages(rounds)[-1]

    # ------------------------------------------------------------------------------ shared by all

    def messages(self, prompts: PromptSet, view: StageView) -> Messages:
        """The chat an agent answers at a stage: the system framing of its mode, then the stage prompt."""
        peers = view.peers
        framing: dict[str, object] = {
            "agent": view.agent,
            "peers": join_names(peers),
            "num_agents": len(view.agents),
            "num_peers": len(peers),
        }
        fields: dict[str, object] = {
            **framing,
            "question": view.question,
            "answer_format": view.answer_format,
        }
        if self.alternating:
            fields["earlier_in_stage"] = self.earlier_in_stage(prompts, view)
        fields.update(self.stage_fields(prompts, view))
        system = prompts.system(view.mode, **framing)
        user = prompts.render(self.template_path(view.stage_index, view.mode), **fields)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    @staticmethod
    def quote(prompts: PromptSet, names: Sequence[str], said: Mapping[str, str]) -> str:
        """The messages of ``names`` as another agent's prompt shows them, each labelled with its writer."""
        return "\n\n".join(prompts.render(("peer_message",), peer=p, message=said[p]) for p in names)

    def earlier_in_stage(self, prompts: PromptSet, view: StageView) -> str:
        """What the agents before this one already wrote in the stage (empty with simultaneous turns)."""
        said = view.shown[view.stage_index]
        earlier = [p for p in said if p != view.agent]
        if not earlier:
            return ""
        return prompts.render(("earlier_in_stage",), messages=self.quote(prompts, earlier, said))

    def turn_plan(self, agents: Sequence[str], num_stages: int, turn_order: str, first: int = 0) -> TurnPlan:
        """Simultaneous: one step per stage, everyone writes. Alternating (the paper's figure: A, B, A, B,
        A, B): one step per agent and stage, in agent order starting from ``agents[first]``."""
        if turn_order == "simultaneous":
            return [(k, tuple(agents)) for k in range(num_stages)]
        order = (*agents[first:], *agents[:first])
        return [(k, (a,)) for k in range(num_stages) for a in order]

    def check_turn_order(self, turn_order: str, prompts: PromptSet, num_stages: int) -> None:
        """Fail fast when alternating turns are asked for but could not change what anyone sees."""
        if turn_order != "alternating":
            return
        if not self.alternating:
            raise ILRConfigError(
                f"turn_order='alternating' is not defined for protocol={self.name!r} (agents take turns "
                f"within each stage only in {[p.name for p in registry.registered() if p.alternating]}); use "
                "turn_order='simultaneous'"
            )
        for k in range(num_stages):
            for mode in MODES:
                path = self.template_path(k, mode)
                if "{earlier_in_stage}" not in prompts.template(*path):
                    raise ILRConfigError(
                        f"turn_order='alternating' shows each agent what was already written in its "
                        f"stage through {{earlier_in_stage}}, which prompt {'.'.join(path)} lacks; add "
                        "it to that template or use turn_order='simultaneous'"
                    )


def join_names(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def register_protocol(protocol: Protocol, *, overwrite: bool = False) -> Protocol:
    """Make ``protocol`` available as ``make(..., protocol=protocol.name)``."""
    if not isinstance(protocol, Protocol):
        raise ILRConfigError(f"register_protocol takes a Protocol instance, got {type(protocol).__name__}")
    registry.add(protocol, overwrite=overwrite)
    return protocol


__all__ = [
    "Messages",
    "Protocol",
    "StageView",
    "TurnPlan",
    "join_names",
    "register_protocol",
]
