"""The multiple-choice benchmarks: GPQA-Diamond and MMLU-STEM (answer: a letter)."""

from __future__ import annotations

import ast
import hashlib
import random

from ilr_env.tasks.base import Question
from ilr_env.tasks.benchmarks.common import AI_INFRA, AI_INFRA_PIP, BenchmarkTask, data_file, pick
from ilr_env.tasks.sources import DataDirSource, HubSource, PackageSource, Row

LETTERS = "ABCDEFGHIJ"
MMLU_STEM_SUBJECTS = frozenset(
    {
        "abstract_algebra",
        "astronomy",
        "college_biology",
        "college_chemistry",
        "college_computer_science",
        "college_mathematics",
        "college_physics",
        "computer_security",
        "conceptual_physics",
        "electrical_engineering",
        "elementary_mathematics",
        "high_school_biology",
        "high_school_chemistry",
        "high_school_computer_science",
        "high_school_mathematics",
        "high_school_physics",
        "high_school_statistics",
        "machine_learning",
    }
)


def _choice_prompt(question: str, choices: list[str]) -> str:
    return question.strip() + "\n\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def map_gpqa(task: str, row: Row, index: int, split: str) -> Question:
    """GPQA lists the correct answer first, so options are shuffled with a seed derived from the id."""
    own = str(pick(row, "Record ID"))
    correct = str(pick(row, "Correct Answer")).strip()
    options = [correct] + [str(pick(row, f"Incorrect Answer {k}")).strip() for k in (1, 2, 3)]
    seed = int.from_bytes(hashlib.sha256(own.encode()).digest()[:8], "big")
    random.Random(seed).shuffle(options)
    gold = options.index(correct)
    return Question(
        id=f"{task}/{own}",
        prompt=_choice_prompt(str(pick(row, "Question")), options),
        answer=LETTERS[gold],
        task=task,
        kind="choice",
        metadata={
            "choices": options,
            "gold_index": gold,
            "subject": row.get("Subdomain"),
            "domain": row.get("High-level domain"),
        },
    )


def map_mmlu(task: str, row: Row, index: int, split: str) -> Question:
    choices = pick(row, "choices")
    if isinstance(choices, str):
        choices = ast.literal_eval(choices)
    choices = [str(c) for c in choices]
    answer = pick(row, "answer")
    gold = LETTERS.index(answer) if isinstance(answer, str) and answer in LETTERS else int(answer)
    if not 0 <= gold < len(choices):
        raise ValueError(f"answer index {answer!r} is out of range for {len(choices)} choices")
    return Question(
        id=f"{task}/{index}",
        prompt=_choice_prompt(str(pick(row, "question")), choices),
        answer=LETTERS[gold],
        task=task,
        kind="choice",
        metadata={"choices": choices, "gold_index": gold, "subject": row.get("subject") or row.get("type")},
    )


def _is_mmlu_stem(row: Row) -> bool:
    return (row.get("subject") or row.get("type")) in MMLU_STEM_SUBJECTS


CHOICE_TASKS: tuple[BenchmarkTask, ...] = (
    BenchmarkTask(
        "gpqa_diamond",
        "choice",
        "GPQA-Diamond (graduate science, options shuffled per question)",
        {
            "test": (
                DataDirSource(("gpqa_diamond.csv", "gpqa_diamond.csv.gz")),
                PackageSource(AI_INFRA, ("data/gpqa/gpqa_diamond.csv",), AI_INFRA_PIP),
                HubSource("Idavidrein/gpqa", "train", ("gpqa_diamond",)),
            ),  # unverified revision; gated
        },
        map_gpqa,
    ),
    BenchmarkTask(
        "mmlu_stem",
        "choice",
        "MMLU, the 18 STEM subjects",
        {
            "test": (data_file("mmlu_stem"), HubSource("cais/mmlu", "test", ("all",))),  # unverified revision
        },
        map_mmlu,
        keep=_is_mmlu_stem,
    ),
)
