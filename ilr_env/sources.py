"""Resolve the env's ``questions=``, ``difficulty=`` and ``abilities=`` arguments, checked once.

The difficulty and ability sources accept several shapes (a JSON path, an ``Estimates``, a dict,
``"level"``, a list in agent order); each is turned into ``{agent: {question id: D_q}}`` / ``{agent: γ}``
once, at construction, failing with the accepted shapes named, so a bad source never surfaces as a wrong
mode in the middle of training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ilr_env import difficulty as dif
from ilr_env.errors import ILRConfigError
from ilr_env.tasks.base import Question

PerAgentDifficulty = dict[str, dict[str, float]]


def resolve_difficulties(
    src: Any, questions: list[Question], agents: Sequence[str], *, dynamic: bool, task: str
) -> PerAgentDifficulty | None:
    """D_q for every agent: one shared source, or ``{agent: {question id: D_q}}`` (each agent's own)."""
    per_agent = isinstance(src, Mapping) and bool(src) and all(isinstance(v, Mapping) for v in src.values())
    if not per_agent:
        shared = _one_difficulty(src, questions, "difficulty", dynamic=dynamic, task=task)
        return None if shared is None else dict.fromkeys(agents, shared)
    unknown = [a for a in src if a not in agents]
    missing = [a for a in agents if a not in src]
    if unknown or missing:
        raise ILRConfigError(
            f"per-agent difficulty must give exactly the agents {list(agents)}; unknown "
            f"{unknown}, missing {missing}"
        )
    return {
        a: _one_difficulty(src[a], questions, f"difficulty[{a!r}]", dynamic=dynamic, task=task) or {}
        for a in agents
    }


def _one_difficulty(
    src: Any, questions: list[Question], what: str, *, dynamic: bool, task: str
) -> dict[str, float] | None:
    if src is None and dynamic:
        src = _level_fallback(questions, task)
    if src is None:
        return None
    est = _difficulty_estimates(src, questions, what)
    if est.kind != "difficulty":
        raise ILRConfigError(f"{what} got {est.kind} estimates; pass difficulty estimates")
    bad = [k for k, v in est.values.items() if not math.isfinite(v)]
    if bad:
        raise ILRConfigError(f"{what} for {bad[0]!r} is {est.values[bad[0]]}; difficulties must be finite")
    missing = [q.id for q in questions if q.id not in est.values]
    if dynamic and missing:
        raise ILRConfigError(
            f"mode='dynamic' needs a difficulty for every question ({what}); {len(missing)} of "
            f"{len(questions)} have "
            f"none (e.g. {missing[:3]}). Estimate them for this split, or restrict the pool with "
            "questions=/limit="
        )
    return dict(est.values)


def _level_fallback(questions: list[Question], task: str) -> str:
    if all(dif.question_level(q) is not None for q in questions):
        return "level"
    raise ILRConfigError(
        f"mode='dynamic' needs a difficulty D_q per question, and task {task!r} "
        "has no "
        "'level' field to fall back on. Pass difficulty=<dict qid->D_q or JSON path> (made "
        "once with "
        "ilr_env.difficulty.rank_difficulty or empirical_difficulty, saved with save_json), "
        "or choose "
        "mode='cooperate', 'compete' or a cooperation probability p"
    )


def _difficulty_estimates(src: Any, questions: list[Question], what: str) -> dif.Estimates:
    try:
        if isinstance(src, dif.Estimates):
            return src
        if isinstance(src, str) and src == "level":
            return dif.level_difficulty(questions)
        if isinstance(src, str | Path):
            return dif.load_json(src, kind="difficulty")
        if isinstance(src, Mapping):
            return dif.Estimates("difficulty", {str(k): float(v) for k, v in src.items()})
    except dif.DifficultyError as exc:
        raise ILRConfigError(str(exc)) from exc
    raise ILRConfigError(
        f"{what} must be None, 'level', a dict qid->D_q (or agent -> such a dict), an "
        "Estimates or a JSON path, "
        f"got {type(src).__name__}"
    )


def resolve_abilities(src: Any, agents: Sequence[str]) -> dict[str, float] | None:
    """γ per agent from a dict agent->γ, a list in agent order, an ``Estimates`` or a JSON path."""
    if src is None:
        return None
    values = _ability_values(_ability_source(src), list(agents))
    bad = [a for a, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ILRConfigError(f"ability of {bad[0]} is {values[bad[0]]}; abilities must be finite")
    return values


def _ability_source(src: Any) -> Any:
    try:
        if isinstance(src, str | Path):
            src = dif.load_json(src, kind="ability")
    except dif.DifficultyError as exc:
        raise ILRConfigError(str(exc)) from exc
    if isinstance(src, dif.Estimates):
        if src.kind != "ability":
            raise ILRConfigError(f"abilities got {src.kind} estimates; pass ability estimates")
        src = src.values
    return src


def _ability_values(src: Any, agents: list[str]) -> dict[str, float]:
    if isinstance(src, Mapping):
        try:
            return dif.abilities_by_agent(src, agents)
        except dif.DifficultyError as exc:
            raise ILRConfigError(f"{exc}, or pass a list in agent order") from exc
    if isinstance(src, Sequence | np.ndarray):
        if len(src) != len(agents):
            raise ILRConfigError(f"abilities list has {len(src)} values for {len(agents)} agents")
        return {a: float(v) for a, v in zip(agents, src, strict=True)}
    raise ILRConfigError(
        f"abilities must be a dict agent->γ, a list, an Estimates or a JSON path, got {type(src).__name__}"
    )


def check_questions(questions: Sequence[Question]) -> list[Question]:
    """A non-empty list of Questions with unique ids (the pool an env draws from)."""
    qs = list(questions) if not isinstance(questions, str | bytes) else None
    if not qs:
        raise ILRConfigError(f"questions must be a non-empty list of ilr_env.Question, got {questions!r:.80}")
    bad = [i for i, q in enumerate(qs) if not isinstance(q, Question)]
    if bad:
        raise ILRConfigError(f"questions[{bad[0]}] is {type(qs[bad[0]]).__name__}, not ilr_env.Question")
    ids = [q.id for q in qs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ILRConfigError(f"question ids must be unique; {dup!r} appears more than once")
    return qs


__all__ = ["check_questions", "resolve_abilities", "resolve_difficulties"]
