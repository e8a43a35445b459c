"""The env's constructor arguments, validated at once so that a bad value fails at ``make``, not mid-run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ilr_env.errors import ILRConfigError
from ilr_env.protocols import MODES, get_protocol

RENDER_MODES = (None, "ansi", "human")
TURN_ORDERS = ("simultaneous", "alternating")
FIRST_SPEAKERS = ("fixed", "rotate")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class EnvConfig:
    """Validated constructor arguments (see ``ilr_env.make``); derived values live on the env.

    ``first_speaker`` orders alternating turns: ``"fixed"`` lets agent_0 open every stage; ``"rotate"``
    draws the opener of each episode from the env's seeded generator, every agent equally likely, and
    the others follow in cyclic order (so with models of different strength each one opens as often).
    """

    task: str
    num_agents: int = 2
    protocol: str | None = None
    debate_rounds: int = 2
    mode: str | float = "dynamic"
    split: str = "test"
    data_dir: str | Path | None = None
    limit: int | None = None
    max_message_chars: int = 4000
    format_reward: float = 0.0
    render_mode: str | None = None
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)
    turn_order: str = "simultaneous"
    first_speaker: str = "fixed"

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ILRConfigError(f"task must be a non-empty task name such as 'math500', got {self.task!r}")
        if not _is_int(self.num_agents) or self.num_agents < 1:
            raise ILRConfigError(
                f"num_agents must be an int ≥ 1 (1 gives protocol='single'), got {self.num_agents!r}"
            )
        self._check_protocol()
        if not _is_int(self.debate_rounds) or self.debate_rounds < 1:
            raise ILRConfigError(f"debate_rounds must be an int ≥ 1, got {self.debate_rounds!r}")
        self._check_mode()
        self._check_numbers()
        if self.render_mode not in RENDER_MODES:
            raise ILRConfigError(f"render_mode must be None, 'ansi' or 'human', got {self.render_mode!r}")
        self._check_turns()
        if not isinstance(self.task_kwargs, Mapping):
            raise ILRConfigError(
                f"task_kwargs must be a dict of load_questions keyword arguments, got {self.task_kwargs!r}"
            )

    def _check_protocol(self) -> None:
        name = self.protocol if self.protocol is not None else ("idea3" if self.num_agents >= 2 else "single")
        proto = get_protocol(name)
        if self.num_agents < proto.min_agents:
            raise ILRConfigError(
                f"protocol={name!r} needs num_agents ≥ {proto.min_agents}, got {self.num_agents}; use "
                "protocol='single' for one agent"
            )
        object.__setattr__(self, "protocol", name)

    def _check_mode(self) -> None:
        if isinstance(self.mode, str):
            if self.mode not in ("dynamic", *MODES):
                raise ILRConfigError(
                    f"mode must be 'dynamic', 'cooperate', 'compete' or a cooperation probability in [0, "
                    f"1], got {self.mode!r}"
                )
            return
        if isinstance(self.mode, bool) or not isinstance(self.mode, int | float) or not 0.0 <= self.mode <= 1:
            raise ILRConfigError(
                f"mode as a cooperation probability must be a number in [0, 1], got {self.mode!r}"
            )
        object.__setattr__(self, "mode", float(self.mode))

    def _check_numbers(self) -> None:
        if self.limit is not None and (not _is_int(self.limit) or self.limit < 1):
            raise ILRConfigError(f"limit must be None or an int ≥ 1, got {self.limit!r}")
        mmc = self.max_message_chars
        if not _is_int(mmc) or mmc < 1:
            raise ILRConfigError(
                f"max_message_chars must be an int > 0 (characters kept per message), got {mmc!r}"
            )
        fr = self.format_reward
        if isinstance(fr, bool) or not isinstance(fr, int | float) or not math.isfinite(fr) or fr < 0:
            raise ILRConfigError(f"format_reward must be a finite number ≥ 0, got {fr!r}")
        object.__setattr__(self, "format_reward", float(fr))

    def _check_turns(self) -> None:
        if self.turn_order not in TURN_ORDERS:
            raise ILRConfigError(f"turn_order must be one of {list(TURN_ORDERS)}, got {self.turn_order!r}")
        if self.first_speaker not in FIRST_SPEAKERS:
            raise ILRConfigError(
                f"first_speaker must be one of {list(FIRST_SPEAKERS)}, got {self.first_speaker!r}"
            )
        if self.first_speaker == "rotate" and self.turn_order != "alternating":
            raise ILRConfigError(
                "first_speaker='rotate' orders alternating turns, and with turn_order="
                f"{self.turn_order!r} everyone writes at once; use turn_order='alternating' or "
                "first_speaker='fixed'"
            )


def agent_names(num_agents: int) -> list[str]:
    """The agents of an m-agent env, in order: ``agent_0 .. agent_{m-1}`` (everyone's one spelling)."""
    return [f"agent_{i}" for i in range(num_agents)]


__all__ = ["FIRST_SPEAKERS", "RENDER_MODES", "TURN_ORDERS", "EnvConfig", "agent_names"]
