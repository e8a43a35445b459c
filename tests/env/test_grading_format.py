"""A value equal to the gold is correct however it is written; a different value stays wrong.

Property tests over real GSM8K and MATH-500 questions whose gold is a plain number: thousands separators,
a currency sign, a trailing unit and trailing zeros never turn a correct answer wrong (the copied-expression
rule once rejected ``2,000`` because the question says "2,000 steps"), and the same formatting never turns
a wrong number right.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilr_env import load_questions
from ilr_env.grading import grade
from ilr_env.tasks.base import Question

_PLAIN_GOLD = re.compile(r"-?\d+(?:\.\d+)?")
SEPARATORS = ["", ",", "{,}", ",\\!", "\\,"]
CURRENCIES = ["", "\\$", "$"]
UNITS = ["", " dollars", " steps", " square feet", "\\text{ cm}", "\\,\\text{km}", "\\mbox{ apples}"]
WRAPPERS = ["So the answer is \\boxed{{{}}}.", "Final answer: {}", "\\boxed{{{}}}"]


def _numeric_questions() -> dict[str, list[Question]]:
    out = {}
    for task in ("gsm8k", "math500"):
        try:
            qs = load_questions(task)
        except (LookupError, OSError) as exc:  # the data directory is optional
            pytest.skip(f"{task} not available offline: {exc}", allow_module_level=True)
        out[task] = [q for q in qs if _PLAIN_GOLD.fullmatch(q.answer.strip())]
    return out


QUESTIONS = _numeric_questions()
ALL = QUESTIONS["gsm8k"] + QUESTIONS["math500"]


def written(value: Decimal, sep: str, zeros: int, currency: str, unit: str, sign_first: bool) -> str:
    """``value`` as a person might write it."""
    text = format(abs(value), "f")
    whole, _, frac = text.partition(".")
    groups = [whole[max(0, i - 3) : i] for i in range(len(whole), 0, -3)][::-1]
    frac += "0" * zeros
    body = sep.join(groups) + (f".{frac}" if frac else "")
    minus = "-" if value < 0 else ""
    money = f"{minus}{currency}{body}" if sign_first else f"{currency}{minus}{body}"
    return money + unit


formats = st.tuples(
    st.sampled_from(SEPARATORS),
    st.integers(0, 2),
    st.sampled_from(CURRENCIES),
    st.sampled_from(UNITS),
    st.booleans(),
    st.sampled_from(WRAPPERS),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(q=st.sampled_from(ALL), fmt=formats)
def test_formatting_the_gold_never_makes_it_wrong(q: Question, fmt: tuple) -> None:
    sep, zeros, currency, unit, sign_first, wrapper = fmt
    answer = written(Decimal(q.answer.strip()), sep, zeros, currency, unit, sign_first)
    g = grade(q, wrapper.format(answer))
    assert g.correct, (q.id, q.answer, answer, g)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    q=st.sampled_from(ALL),
    fmt=formats,
    delta=st.integers(-5000, 5000).filter(bool),
    scale=st.sampled_from([Decimal(1), Decimal("0.01")]),
)
def test_a_wrong_number_stays_wrong_however_written(
    q: Question, fmt: tuple, delta: int, scale: Decimal
) -> None:
    sep, zeros, currency, unit, sign_first, wrapper = fmt
    wrong = Decimal(q.answer.strip()) + delta * scale
    answer = written(wrong, sep, zeros, currency, unit, sign_first)
    g = grade(q, wrapper.format(answer))
    assert not g.correct, (q.id, q.answer, answer, g)


@pytest.mark.parametrize(
    ("qid", "reply", "correct"),
    [
        ("gsm8k/test/407", "\\boxed{2,000}", True),  # the question says "2,000 steps"
        ("gsm8k/test/407", "\\boxed{2,001}", False),
        ("gsm8k/test/407", "\\boxed{\\$2,000 steps}", True),
        ("gsm8k/test/419", "\\boxed{3,000}", True),  # the question says "3,000 feet"
        ("gsm8k/test/419", "\\boxed{3,000.00 feet}", True),
        ("gsm8k/test/419", "\\boxed{4,000}", False),
    ],
)
def test_values_that_occur_in_the_question(qid: str, reply: str, correct: bool) -> None:
    q = next(q for q in QUESTIONS["gsm8k"] if q.id == qid)
    g = grade(q, reply)
    assert g.correct is correct, g
    assert g.reason != "rejected:copied_from_question"


def test_an_operator_expression_copied_from_the_question_is_still_rejected() -> None:
    q = Question(
        id="c", prompt="He walks 10,000 - 8,000 steps. How many?", answer="2000", task="t", kind="math"
    )
    assert grade(q, "\\boxed{2,000}").correct
    for copied in ("10,000 - 8,000", "10000 - 8000"):
        g = grade(
            Question(id="c", prompt=f"Compute {copied}.", answer="2000", task="t", kind="math"),
            f"\\boxed{{{copied}}}",
        )
        assert not g.correct, (copied, g)
    q = Question(id="s", prompt="Simplify $\\sqrt{18}$.", answer="3\\sqrt{2}", task="t", kind="math")
    assert grade(q, "\\boxed{\\sqrt{18}}").reason == "rejected:copied_from_question"
    q = Question(id="p", prompt="What is 12 \\times 3?", answer="36", task="t", kind="math")
    assert grade(q, "\\boxed{12 \\times 3}").reason == "rejected:copied_from_question"
    assert grade(q, "\\boxed{\\$36}").correct
