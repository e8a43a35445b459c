"""Environment ids: every task of ``ilr_env.list_tasks()`` is makeable by its name, plus registered presets.

A preset is a task with default keyword arguments (``register("math500-debate-v0", task="math500",
protocol="debate")``); ``make`` merges the caller's keyword arguments over the preset's. Registration is
explicit (no discovery at import), and ``unregister`` exists so tests can clean up in fixtures.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ilr_env.env import ILRConfigError, ILRParallelEnv
from ilr_env.tasks import TaskNotFoundError, list_tasks


class EnvNotFoundError(TaskNotFoundError):
    """An unknown env id; the message suggests the closest known ids."""


@dataclass(frozen=True)
class EnvSpec:
    """A named preset: the task to load and default keyword arguments for ``ILRParallelEnv``."""

    id: str
    task: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


_SPECS: dict[str, EnvSpec] = {}


def register(env_id: str, task: str | None = None, *, overwrite: bool = False, **kwargs: Any) -> EnvSpec:
    """Register ``env_id`` as ``task`` (default: the id itself) with default keyword arguments."""
    if not isinstance(env_id, str) or not env_id:
        raise ILRConfigError(f"env_id must be a non-empty string, got {env_id!r}")
    if env_id in _SPECS and not overwrite:
        raise ILRConfigError(f"env id {env_id!r} is already registered; pass overwrite=True to replace it")
    spec = EnvSpec(id=env_id, task=task or env_id, kwargs=MappingProxyType(dict(kwargs)))
    _SPECS[env_id] = spec
    return spec


def unregister(env_id: str) -> None:
    """Remove a registered preset (task names themselves cannot be removed here)."""
    if env_id not in _SPECS:
        raise EnvNotFoundError(f"env id {env_id!r} is not registered; registered: {sorted(_SPECS)}")
    del _SPECS[env_id]


def list_envs() -> list[str]:
    """Every id ``make`` accepts: the registered presets and all task names."""
    return sorted(set(_SPECS) | set(list_tasks()))


def make(task: str, **kwargs: Any) -> ILRParallelEnv:
    """Build an ``ILRParallelEnv`` for an env id or task name (keyword arguments: ``ILRParallelEnv``).

    With ``questions=[...]`` the name is only a label and need not be a known task.
    """
    if not isinstance(task, str):
        raise ILRConfigError(f"make() takes an env id or task name as a string, got {type(task).__name__}")
    spec = _SPECS.get(task)
    if spec is not None:
        return ILRParallelEnv(spec.task, **{**spec.kwargs, **kwargs})
    if task in list_tasks() or kwargs.get("questions") is not None:
        return ILRParallelEnv(task, **kwargs)
    known = list_envs()
    close = difflib.get_close_matches(task, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else f"; known: {known}"
    raise EnvNotFoundError(f"unknown env id or task {task!r}{hint} (list them with ilr_env.list_envs())")


__all__ = ["EnvNotFoundError", "EnvSpec", "list_envs", "make", "register", "unregister"]
