"""Procedural tasks from ``reasoning-gym``: unlimited, seeded questions with difficulty knobs, fully offline.

``rg/<dataset>`` accepts as task kwargs ``size`` (questions per split, default 1000), ``seed`` (default 0,
in ``[0, 10**9)``) and any field of the dataset's reasoning-gym config (e.g. ``min_terms``, ``max_digits``
for ``basic_arithmetic``), so difficulty is a keyword away.

Splits never share a question: each split draws from its own seed stream (``seed + k * 10**9``), and a
question belongs to the split its text hashes to (one third each), so train/validation/test are disjoint
whatever sizes are asked for, and each split is de-duplicated. Generation is prefix-stable: ``size=10``
gives the first ten questions of ``size=1000``.

Questions have ``kind="math"`` and ``metadata["grader"] = "reasoning_gym"``, with the dataset name
(``rg_dataset``) and the full reasoning-gym entry (``rg_entry``), so a grader can score with the
dataset's own rule: ``reasoning_gym.get_score_answer_fn(m["rg_dataset"])(answer_text, m["rg_entry"])``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ilr_env.tasks.base import AnswerKind, Question
from ilr_env.tasks.errors import TaskArgumentError, TaskNotFoundError

RG_SPLITS = ("train", "validation", "test")
DEFAULT_SIZE = 1000
_SEED_STRIDE = 10**9
_MAX_DRAWS_PER_QUESTION = 40
# Listed by list_tasks(); any other reasoning-gym dataset still loads as rg/<name>.
LISTED_RG_DATASETS = (
    "basic_arithmetic",
    "chain_sum",
    "complex_arithmetic",
    "count_primes",
    "decimal_arithmetic",
    "fraction_simplification",
    "gcd",
    "gsm_symbolic",
    "lcm",
    "leg_counting",
    "polynomial_equations",
    "power_function",
    "prime_factorization",
    "products",
    "simple_equations",
)


def _split_of(question: str) -> str:
    digest = hashlib.sha256(question.encode("utf-8")).digest()
    return RG_SPLITS[int.from_bytes(digest[:8], "big") % len(RG_SPLITS)]


def _rg_registry() -> dict[str, Any]:
    from reasoning_gym.factory import DATASETS  # heavy import, only when rg tasks are used

    return DATASETS


@dataclass(frozen=True)
class ReasoningGymTask:
    """One reasoning-gym dataset as a task (constructed without importing reasoning-gym)."""

    dataset: str
    kind: AnswerKind = "math"

    @property
    def name(self) -> str:
        return f"rg/{self.dataset}"

    @property
    def description(self) -> str:
        return f"reasoning-gym '{self.dataset}' (procedural; kwargs: size, seed, config fields)"

    @property
    def splits(self) -> tuple[str, ...]:
        return RG_SPLITS

    def availability(self, data_dir: Path | None) -> dict[str, str | None]:
        return {split: "reasoning-gym (generated)" for split in RG_SPLITS}

    def _config_fields(self) -> set[str]:
        _, config_cls = _rg_registry()[self.dataset]
        return {f.name for f in dataclasses.fields(config_cls)} - {"seed", "size"}

    def load(self, split: str, data_dir: Path | None, limit: int | None, **kwargs: Any) -> list[Question]:
        import reasoning_gym

        size = kwargs.pop("size", DEFAULT_SIZE)
        seed = kwargs.pop("seed", 0)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise TaskArgumentError(f"{self.name}: size must be a positive int, got {size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _SEED_STRIDE:
            raise TaskArgumentError(f"{self.name}: seed must be an int in [0, {_SEED_STRIDE}), got {seed!r}")
        unknown = set(kwargs) - self._config_fields()
        if unknown:
            raise TaskArgumentError(
                f"{self.name} has no option {', '.join(sorted(unknown))}; accepted: size, seed, "
                + ", ".join(sorted(self._config_fields()))
            )
        wanted = min(size, limit) if limit is not None else size
        draws = _MAX_DRAWS_PER_QUESTION * wanted + 100
        split_seed = seed + _SEED_STRIDE * RG_SPLITS.index(split)
        dataset = reasoning_gym.create_dataset(self.dataset, size=draws, seed=split_seed, **kwargs)
        config_key = json.dumps({"seed": seed, **kwargs}, sort_keys=True, default=str)
        tag = hashlib.sha256(config_key.encode()).hexdigest()[:8]
        questions: list[Question] = []
        seen: set[str] = set()
        for index in range(draws):
            if len(questions) == wanted:
                break
            entry = dataset[index]
            text = str(entry["question"])
            if text in seen or _split_of(text) != split:
                continue
            seen.add(text)
            questions.append(
                Question(
                    id=f"{self.name}/{split}/{tag}/{len(questions)}",
                    prompt=text,
                    answer=str(entry["answer"]),
                    task=self.name,
                    kind=self.kind,
                    metadata={
                        "grader": "reasoning_gym",
                        "rg_dataset": self.dataset,
                        "rg_entry": entry,
                        "rg_config": {"seed": seed, **kwargs},
                        "rg_index": index,
                        "rg_split_seed": split_seed,
                        "source": "reasoning-gym",
                    },
                )
            )
        if len(questions) < wanted:
            raise ValueError(
                f"{self.name} split {split!r}: only {len(questions)} distinct questions in {draws} draws, "
                f"{wanted} wanted; lower size or widen the dataset's config (its question space is too small)"
            )
        return questions


def make_rg_task(dataset: str) -> ReasoningGymTask:
    """The task for reasoning-gym dataset ``dataset``; unknown names list the closest reasoning-gym names."""
    registry = _rg_registry()
    if dataset not in registry:
        import difflib

        close = difflib.get_close_matches(dataset, list(registry), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join('rg/' + c for c in close)}?" if close else ""
        raise TaskNotFoundError(
            f"reasoning-gym has no dataset {dataset!r}.{hint} Known: {', '.join(sorted(registry))}"
        )
    return ReasoningGymTask(dataset)
