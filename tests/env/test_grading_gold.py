"""Graders against real benchmark golds: golds grade correct, other questions' golds grade wrong, verdicts
equal math-verify's own, and HumanEval's canonical solutions pass the sandbox while stubs fail.

The fast suite uses a slice of each benchmark; the full runs are marked slow.
"""

from __future__ import annotations

import random

import pytest
from math_verify import parse, verify

from ilr_env import load_questions
from ilr_env.grading import check_many, grade
from ilr_env.grading.verify_pool import parse_gold_text
from ilr_env.tasks.base import Question

MATH_TASKS = ["math500", "gsm8k", "aime24", "amc23", "minerva_math", "olympiadbench"]
FAST_SLICE = 40
# Known exceptions (question id -> reason). None so far: every gold of every benchmark grades correct.
GOLD_EXCEPTIONS: dict[str, str] = {}


def _questions(task: str, limit: int | None) -> list[Question]:
    try:
        return load_questions(task, limit=limit)
    except (LookupError, OSError) as exc:  # the data directory is optional: skip, naming what is missing
        pytest.skip(f"{task} not available offline: {exc}")


def _derangement(qs: list[Question], seed: int) -> list[tuple[Question, str]]:
    """Each question paired with another question's gold, skipping pairs whose golds are equal strings."""
    rng = random.Random(seed)
    order = list(range(len(qs)))
    rng.shuffle(order)
    shifted = order[1:] + order[:1]
    return [
        (qs[i], qs[j].answer) for i, j in zip(order, shifted) if qs[i].answer.strip() != qs[j].answer.strip()
    ]


def _check_golds(task: str, limit: int | None) -> None:
    qs = _questions(task, limit)
    good = [q for q in qs if grade(q, f"We work it out.\nSo the answer is \\boxed{{{q.answer}}}.").correct]
    misses = {q.id for q in qs} - {q.id for q in good} - set(GOLD_EXCEPTIONS)
    assert not misses, f"{task}: golds graded wrong: {sorted(misses)[:20]}"  # 100%, bar named exceptions
    pairs = _derangement(qs, seed=0)
    rejected = sum(not grade(q, f"Thus \\boxed{{{wrong}}}.").correct for q, wrong in pairs)
    assert rejected / len(pairs) >= 0.97, f"{task}: only {rejected}/{len(pairs)} wrong golds rejected"


@pytest.mark.parametrize("task", MATH_TASKS)
def test_golds_fast_slice(task: str) -> None:
    _check_golds(task, FAST_SLICE)


@pytest.mark.slow
@pytest.mark.parametrize("task", MATH_TASKS)
def test_golds_full(task: str) -> None:
    _check_golds(task, None)


def _direct(gold: str, completion: str) -> bool:
    return bool(verify(parse_gold_text(gold), parse(completion)))


def _check_equivalence(limit: int | None) -> None:
    qs = _questions("math500", limit)
    cases = [(q, f"Hence \\boxed{{{q.answer}}}.") for q in qs]
    cases += [(q, f"Hence \\boxed{{{wrong}}}.") for q, wrong in _derangement(qs, seed=1)]
    differ = [(q.answer, text) for q, text in cases if grade(q, text).correct != _direct(q.answer, text)]
    assert not differ, f"verdicts differ from math-verify on {len(differ)} cases, e.g. {differ[:5]}"


def test_verdicts_equal_math_verify_fast_slice() -> None:
    _check_equivalence(60)


@pytest.mark.slow
def test_verdicts_equal_math_verify_full() -> None:
    _check_equivalence(None)


def _check_humaneval(limit: int | None) -> None:
    qs = _questions("humaneval", limit)
    passed = check_many(qs, [q.answer for q in qs], workers=2)
    failures = [(q.id, g.reason) for q, g in zip(qs, passed) if not g.correct]
    assert not failures, f"canonical solutions failed: {failures[:10]}"
    stubs = check_many(qs, ["    pass\n"] * len(qs), workers=2)
    wrongly = [q.id for q, g in zip(qs, stubs) if g.correct]
    assert not wrongly, f"`pass` bodies passed: {wrongly}"


def test_humaneval_fast_slice() -> None:
    _check_humaneval(16)


@pytest.mark.slow
def test_humaneval_full() -> None:
    _check_humaneval(None)
