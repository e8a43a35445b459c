"""Difficulty and ability files, read one way wherever a user names one (training's config, ``ilr eval``).

A difficulty file is a plain ``{question id: D_q}`` object, an ``ilr_env.difficulty`` estimates file, or a
self-ranking from ``ilr difficulty`` (then each agent gets its own model's ranking, or the pooled one with
``shared``). Abilities are a list in agent order, ``{"abilities": [...]}``, an estimates file, or an
object keyed by agent name or by model name (matched by key, never by order; an unknown key is an error).
What comes out is plain values the env takes as they are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ilr_agents.config import ConfigError
from ilr_env import difficulty as diff


def read_json(path: str | Path, what: str) -> Any:
    """The JSON in ``path``; a missing or malformed file is a ConfigError naming ``what``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what}={str(path)!r}: no such file; use a JSON file or one of the named sources")
    try:
        return json.loads(p.read_text())
    except ValueError as exc:
        raise ConfigError(f"{what}={str(path)!r} is not valid JSON: {exc}") from exc


def is_self_ranking(raw: Any) -> bool:
    """A file written by ``ilr difficulty`` (or a run's ``self_rank.json``)."""
    from ilr_agents.self_ranking import SELF_RANK_METHOD

    return isinstance(raw, dict) and raw.get("metadata", {}).get("method") == SELF_RANK_METHOD


def self_ranked_difficulty(
    est: diff.Estimates, agents: Sequence[str], models: Sequence[str], *, shared: bool
) -> dict[str, Any]:
    """Each agent's own D_q (``{agent: {question id: D_q}}``), or with ``shared`` the one pooled D_q."""
    from ilr_agents.self_ranking import SelfRankError, difficulty_for_agents

    try:
        by_agent = difficulty_for_agents(est, list(agents), list(models), shared=shared)
    except SelfRankError as exc:
        raise ConfigError(str(exc)) from exc
    return by_agent[agents[0]] if shared else by_agent


def read_difficulty(
    path: str | Path, agents: Sequence[str], models: Sequence[str], *, shared: bool = False
) -> dict[str, Any]:
    """D_q from a difficulty file: ``{question id: D_q}``, or per agent for a self-ranking."""
    raw = read_json(path, "difficulty")
    if is_self_ranking(raw):
        return self_ranked_difficulty(diff.load_json(path, kind="difficulty"), agents, models, shared=shared)
    if isinstance(raw, dict) and raw.get("format") == diff.ESTIMATES_FORMAT:
        raw = raw["values"]
    if not isinstance(raw, dict):
        raise ConfigError(f"difficulty={str(path)!r} must hold a JSON object of question id: D_q")
    try:
        return {str(k): float(v) for k, v in raw.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"difficulty={str(path)!r}: every D_q must be a number ({exc})") from exc


def read_abilities(source: str | Path, agents: Sequence[str], models: Sequence[str]) -> list[float]:
    """One γ per agent, in agent order, from an abilities file."""
    raw = read_json(source, "abilities")
    if isinstance(raw, dict) and raw.get("format") == diff.ESTIMATES_FORMAT:
        raw = raw["values"]
    elif isinstance(raw, dict) and "abilities" in raw:
        raw = raw["abilities"]
    if isinstance(raw, list):
        values = [float(x) for x in raw]
    elif isinstance(raw, dict):
        try:
            by_agent = diff.abilities_by_agent(raw, list(agents), list(models))
        except diff.DifficultyError as exc:
            raise ConfigError(f"abilities={str(source)!r}: {exc}") from exc
        values = [by_agent[a] for a in agents]
    else:
        raise ConfigError(f"abilities={str(source)!r} must hold a JSON list or object of γ values")
    if len(values) != len(agents):
        raise ConfigError(f"abilities has {len(values)} values for {len(agents)} agents: one per model")
    return values
