"""The whole verdict of a multiple-choice grade, not only `correct`: the reward a trainer sums, the
extracted letter, the reason and the box flag (mutation testing found the reward unchecked)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

import ilr_env
from ilr_env.grading import Grade, grade_choice
from ilr_env.tasks import Question

CHOICES = ["3", "4", "5", "6"]


def _q(answer="B", choices=CHOICES) -> Question:
    metadata = {"choices": choices} if choices is not None else {}
    return Question(id="c/0", prompt="2 + 2 = ?", answer=answer, task="toy", kind="choice", metadata=metadata)


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("So it is \\boxed{B}", Grade(True, 1.0, "B", "match", True)),
        ("So it is \\boxed{C}", Grade(False, 0.0, "C", "mismatch", True)),
        ("So it is \\boxed{4}", Grade(True, 1.0, "B", "match", True)),  # the option's text stands for B
        ("I cannot tell.", Grade(False, 0.0, None, "no_answer", False)),
        ("\\boxed{7}", Grade(False, 0.0, None, "no_answer", True)),
    ],
)
def test_choice_verdicts_in_full(completion, expected):
    assert ilr_env.grade(_q(), completion) == expected


@pytest.mark.parametrize("gold", ["B", "b", "(B)", " 1 ", "1"])
def test_gold_letters_and_zero_based_indices(gold):
    assert ilr_env.grade(_q(answer=gold), "\\boxed{B}").reward == 1.0


def test_without_choices_four_options_are_assumed():
    assert ilr_env.grade(_q(choices=None), "\\boxed{E}") == Grade(False, 0.0, None, "no_answer", True)
    assert ilr_env.grade(_q(choices=None), "\\boxed{D}") == Grade(False, 0.0, "D", "mismatch", True)
    duck = SimpleNamespace(answer="A")  # any object with an answer: no metadata means no choices
    assert grade_choice(duck, "\\boxed{A}") == Grade(True, 1.0, "A", "match", True)


@pytest.mark.parametrize("gold", ["4", "AB", ""])
def test_gold_that_is_no_option_is_refused_with_the_fix(gold):
    message = (
        f"choice gold answer {gold!r} is neither an option letter nor a 0-based index; "
        "store the letter (e.g. 'B') in Question.answer"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ilr_env.grade(_q(answer=gold), "\\boxed{B}")


def test_the_number_of_choices_sets_the_valid_letters():
    five = _q(answer="E", choices=["1", "2", "3", "4", "5"])
    assert ilr_env.grade(five, "\\boxed{E}") == Grade(True, 1.0, "E", "match", True)
    many = _q(answer="X", choices=[str(i) for i in range(26)])
    assert ilr_env.grade(many, "\\boxed{X}") == Grade(True, 1.0, "X", "match", True)
