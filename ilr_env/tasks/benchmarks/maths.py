"""The maths benchmarks: MATH (the paper's training data) and MATH-500, GSM8K, Minerva, OlympiadBench,
AIME and AMC."""

from __future__ import annotations

import ast
import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ilr_env.tasks.base import Question
from ilr_env.tasks.benchmarks.common import (
    AI_INFRA,
    AI_INFRA_PIP,
    BenchmarkTask,
    build_questions,
    data_file,
    pick,
)
from ilr_env.tasks.errors import TaskArgumentError
from ilr_env.tasks.sources import HubSource, PackageSource, Row, Rows, Source
from ilr_env.tasks.text import gsm8k_gold, last_boxed, normalise_number

MATH_VALIDATION_SIZE = 1000
MATH_VALIDATION_SEED = 20250930
HENDRYCKS_MATH_CONFIGS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


def problem_key(text: str) -> str:
    """A MATH problem's identity: its text with all whitespace collapsed (copies differ in spacing)."""
    return " ".join(str(text).split())


def content_id(key: str) -> str:
    """A short stable name for a problem key (the id of a MATH question)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ConcatSource:
    """Several sources read as one (e.g. MATH's train and test files together); all must be available."""

    parts: tuple[Source, ...]

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)

    def locate(self, data_dir: Path | None) -> str | None:
        found = [p.locate(data_dir) for p in self.parts]
        return None if None in found else " + ".join(str(f) for f in found)

    def rows(self, data_dir: Path | None) -> Rows:
        return tuple(row for part in self.parts for row in part.rows(data_dir))


@dataclass(frozen=True)
class MathTask(BenchmarkTask):
    """The paper's MATH data: all of MATH (train + test, 12.5k) minus MATH-500, cut into train/validation.

    * ``test`` — the MATH-500 problems (the held-out set the paper evaluates on);
    * the pool — every MATH problem whose text is not a MATH-500 problem, duplicates dropped (first kept);
    * ``validation`` — ``validation_size`` (1,000) pool problems drawn with a fixed seed (ability fit);
    * ``train`` — the rest of the pool (about 11k with the full MATH).

    Question ids hash the problem text (``math/<12 hex>``), so a problem has the same id whichever source
    (one file, the train and test files, the hub) and split it comes from, and difficulty files keyed by
    id carry over. ``exclude_math500=False`` keeps MATH-500 problems in the pool (not the paper's setup).
    """

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "validation", "test")

    def load(self, split: str, data_dir: Path | None, limit: int | None, **kwargs: Any) -> list[Question]:
        """A split's questions in a stable order (by source row)."""
        unknown = set(kwargs) - {"validation_size", "validation_seed", "exclude_math500"}
        if unknown:
            raise TaskArgumentError(
                f"task 'math' does not accept {', '.join(sorted(unknown))}; it takes validation_size, "
                "validation_seed, exclude_math500"
            )
        held_out, held_origin = self._rows("test", data_dir)
        if split == "test":
            return build_questions(
                self.name, held_out, list(range(len(held_out))), "test", held_origin, self.mapper, limit
            )
        rows, origin = self._rows("pool", data_dir)
        excluded = (
            {problem_key(pick(r, "problem", "question")) for r in held_out}
            if kwargs.get("exclude_math500", True)
            else set()
        )
        first: dict[str, int] = {}
        for index, row in enumerate(rows):
            first.setdefault(problem_key(pick(row, "problem", "question")), index)
        # ordered by content, so the split depends on which problems there are, not on the file order
        pool = [first[key] for key in sorted(first, key=content_id) if key not in excluded]
        size = kwargs.get("validation_size", MATH_VALIDATION_SIZE)
        seed = kwargs.get("validation_seed", MATH_VALIDATION_SEED)
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < len(pool):
            raise TaskArgumentError(
                f"validation_size must be an int in 1..{len(pool) - 1} (the MATH pool has {len(pool)} "
                f"problems after removing MATH-500), got {size!r}"
            )
        order = list(pool)
        random.Random(seed).shuffle(order)
        chosen = sorted(order[:size]) if split == "validation" else sorted(order[size:])
        return build_questions(self.name, rows, chosen, split, origin, self.mapper, limit)

    def availability(self, data_dir: Path | None) -> dict[str, str | None]:
        found = super().availability(data_dir)
        return {"train": found["pool"], "validation": found["pool"], "test": found["test"]}


def _level(value: Any) -> int | None:
    match = re.search(r"\d+", str(value)) if value is not None else None
    return int(match.group(0)) if match else None


def _boxed_gold(row: Row) -> str:
    gold = last_boxed(str(pick(row, "solution")))
    if gold is None:
        raise ValueError("the solution has no \\boxed{} answer")
    return gold


def map_math(task: str, row: Row, index: int, split: str) -> Question:
    answer = row.get("answer")
    gold = str(answer) if answer is not None else _boxed_gold(row)
    own = row.get("unique_id") if task == "math500" else None
    problem = str(pick(row, "problem", "question"))
    if task == "math500":
        qid = f"{task}/{index}"
    else:  # MATH: named by content, the same whatever source or split holds the problem
        qid = f"{task}/{content_id(problem_key(problem))}"
    return Question(
        id=qid,
        prompt=problem,
        answer=gold,
        task=task,
        kind="math",
        metadata={
            "level": _level(row.get("level")),
            "subject": row.get("subject") or row.get("type"),
            "solution": row.get("solution"),
            **({"unique_id": own} if own else {}),
        },
    )


def map_gsm8k(task: str, row: Row, index: int, split: str) -> Question:
    solution = str(pick(row, "answer"))
    return Question(
        id=f"{task}/{split}/{index}",
        prompt=str(pick(row, "question")),
        answer=gsm8k_gold(solution),
        task=task,
        kind="math",
        metadata={"solution": solution},
    )


def map_minerva(task: str, row: Row, index: int, split: str) -> Question:
    answer = row.get("answer")
    gold = str(answer) if answer is not None else _boxed_gold(row)
    return Question(
        id=f"{task}/{row.get('idx', index)}",
        prompt=str(pick(row, "problem", "question")),
        answer=gold,
        task=task,
        kind="math",
        metadata={"subject": row.get("type"), "solution": row.get("solution")},
    )


def map_olympiad(task: str, row: Row, index: int, split: str) -> Question:
    raw = pick(row, "final_answer", "answer")
    answers = ast.literal_eval(raw) if isinstance(raw, str) and raw.lstrip().startswith("[") else raw
    if not isinstance(answers, list):
        answers = [answers]
    gold = ", ".join(str(a).replace("$", "").strip() for a in answers)
    context = row.get("context")
    question = str(pick(row, "question", "problem"))
    return Question(
        id=f"{task}/{row.get('id', index)}",
        prompt=f"{context}\n\n{question}" if context else question,
        answer=gold,
        task=task,
        kind="math",
        metadata={
            "final_answer_raw": answers,
            "unit": row.get("unit"),
            "answer_type": row.get("answer_type"),
            "is_multiple_answer": row.get("is_multiple_answer"),
            "subject": row.get("subfield"),
        },
    )


def map_competition(task: str, row: Row, index: int, split: str) -> Question:
    """AIME/AMC: integer (AIME) or float-as-written (AMC ``27.0``) golds; the normalised form rides along."""
    answer = pick(row, "answer", "Answer")
    own = row.get("id", row.get("ID", index))
    return Question(
        id=f"{task}/{own}",
        prompt=str(pick(row, "problem", "question", "Problem")),
        answer=str(answer).strip(),
        task=task,
        kind="math",
        metadata={
            "answer_normalised": normalise_number(answer),
            "url": row.get("url"),
            "solution": row.get("solution", row.get("Solution")),
        },
    )


MATH500_SOURCES: tuple[Source, ...] = (
    data_file("math500"),
    HubSource("HuggingFaceH4/MATH-500", "test"),  # unverified revision
)

MATH_TASKS: tuple[BenchmarkTask, ...] = (
    BenchmarkTask(
        "math500",
        "math",
        "MATH-500 (Lightman et al. test subset of MATH)",
        {"test": MATH500_SOURCES},
        map_math,
    ),
    MathTask(
        "math",
        "math",
        "MATH (Hendrycks) train + test minus MATH-500: ~11k train, 1,000 validation; test = MATH-500",
        {
            "pool": (
                data_file("math"),
                ConcatSource((data_file("math_train"), data_file("math_test"))),
                ConcatSource(
                    (
                        HubSource("EleutherAI/hendrycks_math", "train", HENDRYCKS_MATH_CONFIGS),
                        HubSource("EleutherAI/hendrycks_math", "test", HENDRYCKS_MATH_CONFIGS),
                    )
                ),
            ),  # unverified revision
            "test": MATH500_SOURCES,
        },
        map_math,
    ),
    BenchmarkTask(
        "gsm8k",
        "math",
        "GSM8K grade-school maths word problems",
        {
            "train": (
                data_file("gsm8k_train"),
                HubSource("openai/gsm8k", "train", ("main",)),
            ),  # unverified revision
            "test": (
                data_file("gsm8k"),
                PackageSource(AI_INFRA, ("data/gsm8k/test.jsonl",), AI_INFRA_PIP),
                HubSource("openai/gsm8k", "test", ("main",)),
            ),  # unverified revision
        },
        map_gsm8k,
    ),
    BenchmarkTask(
        "minerva_math",
        "math",
        "Minerva Math (MIT OCW STEM problems)",
        {
            "test": (
                data_file("minerva_math"),
                HubSource("math-ai/minervamath", "test"),
            ),  # unverified revision
        },
        map_minerva,
    ),
    BenchmarkTask(
        "olympiadbench",
        "math",
        "OlympiadBench, English text-only maths (open-ended)",
        {
            "test": (
                data_file("olympiadbench"),
                HubSource("Hothan/OlympiadBench", "train", ("OE_TO_maths_en_COMP",)),
            ),  # unverified revision
        },
        map_olympiad,
    ),
    BenchmarkTask(
        "aime24",
        "math",
        "AIME 2024 I+II",
        {
            "test": (
                data_file("aime24"),
                HubSource("HuggingFaceH4/aime_2024", "train"),
            ),  # unverified revision
        },
        map_competition,
    ),
    BenchmarkTask(
        "aime25",
        "math",
        "AIME 2025 I+II",
        {
            "test": (
                data_file("aime25"),
                PackageSource(
                    AI_INFRA,
                    ("data/AIME2025/aime2025-I.jsonl", "data/AIME2025/aime2025-II.jsonl"),
                    AI_INFRA_PIP,
                ),
                HubSource("math-ai/aime25", "test"),
            ),  # unverified revision
        },
        map_competition,
    ),
    BenchmarkTask(
        "amc23",
        "math",
        "AMC 2023",
        {
            "test": (data_file("amc23"), HubSource("math-ai/amc23", "test")),  # unverified revision
        },
        map_competition,
    ),
)
