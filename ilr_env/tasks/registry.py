"""The task registry: one name -> one question source, so envs, graders and CLIs agree on what "gsm8k" is.

Benchmarks register themselves when ``ilr_env.tasks`` is imported; ``rg/<dataset>`` names resolve lazily
to any reasoning-gym generator (only a curated few are listed by ``list_tasks``).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ilr_env.tasks.base import Question
from ilr_env.tasks.errors import TaskArgumentError, TaskNotFoundError, UnknownSplitError
from ilr_env.tasks.sources import resolve_data_dir


@runtime_checkable
class Task(Protocol):
    """What the registry needs from a task: its splits, a loader and a cheap availability check."""

    name: str
    kind: str
    description: str

    @property
    def splits(self) -> tuple[str, ...]: ...

    def load(self, split: str, data_dir: Path | None, limit: int | None, **kwargs: Any) -> list[Question]:
        """Questions of ``split`` in a stable order; at most ``limit`` of them when given."""

    def availability(self, data_dir: Path | None) -> dict[str, str | None]:
        """For each split, where its data would come from (None: no source found), without downloading."""


_TASKS: dict[str, Task] = {}


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add ``task`` under ``task.name``; re-registering a name needs ``replace=True`` (typos stay loud)."""
    if not isinstance(task, Task):
        raise TypeError(
            f"{task!r} is not a Task: it needs name, kind, description, splits, load, availability"
        )
    if task.name in _TASKS and not replace:
        raise ValueError(f"task {task.name!r} is already registered; pass replace=True to override it")
    _TASKS[task.name] = task
    return task


def list_tasks() -> list[str]:
    """Registered task names, sorted (``rg/<dataset>`` works for any reasoning-gym dataset, listed or not)."""
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The task called ``name``; unknown names raise TaskNotFoundError with the closest known name."""
    if name in _TASKS:
        return _TASKS[name]
    if name.startswith("rg/"):
        from ilr_env.tasks.procedural import make_rg_task  # imports reasoning_gym

        return register_task(make_rg_task(name.removeprefix("rg/")))
    known = list_tasks()
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise TaskNotFoundError(
        f"unknown task {name!r}.{hint} Known tasks: {', '.join(known)} "
        "(and rg/<dataset> for any reasoning-gym dataset)."
    )


def load_questions(
    task: str,
    split: str = "test",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    **task_kwargs: Any,
) -> list[Question]:
    """Questions of ``task``/``split`` from the first source that has them (see ``ilr_env.tasks``).

    ``limit`` keeps the first ``limit`` questions (the order is stable); ``task_kwargs`` go to the task
    (e.g. ``size``/``seed``/difficulty fields for ``rg/*``, ``validation_size`` for ``math``).
    """
    spec = get_task(task)
    if split not in spec.splits:
        raise UnknownSplitError(
            f"task {task!r} has no split {split!r}; valid splits: {', '.join(spec.splits)}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise TaskArgumentError(f"limit={limit!r}: give a whole number >= 0, or no limit for every question")
    return spec.load(split, resolve_data_dir(data_dir), limit, **task_kwargs)
