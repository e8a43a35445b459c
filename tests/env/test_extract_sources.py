"""What extraction reports besides the answer: its source and the box flag (mutation testing found the
source names and the box flag of a letter answer unchecked), and how a stated answer is cleaned."""

from __future__ import annotations

import dataclasses

import pytest

from ilr_env.grading import extract_choice_letter, extract_math_answer
from ilr_env.grading.extract import Extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{12}", Extraction("12", True, "boxed")),
        ("The answer is $12$.", Extraction("12", False, "answer_is")),
        ("The answer is 12. I hope it is correct.", Extraction("12", False, "answer_is")),
        ("The answer is 3. Then 4. Done", Extraction("3", False, "answer_is")),
        ("The answer is $$", Extraction(None, False, "none")),  # an empty stated answer is no answer
        ("The answer is $x$ and y$", Extraction("x$ and y", False, "answer_is")),
        ("The answer is x$", Extraction("x$", False, "answer_is")),
        ("The answer is 12...", Extraction("12", False, "answer_is")),
        ("The answer is 2X.", Extraction("2X", False, "answer_is")),
        ("The answer is $X$", Extraction("X", False, "answer_is")),
        ("#### 12", Extraction("12", False, "hash")),
        ("no idea", Extraction(None, False, "none")),
    ],
)
def test_math_extraction_source_and_cleaning(text, expected):
    committed = () if expected.answer is None else (expected.answer,)  # one answer: the reply commits to it
    assert extract_math_answer(text) == dataclasses.replace(expected, parts=committed)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\\boxed{B}", ("B", True)),
        ("\\boxed{E} but the answer is C", ("C", True)),
        ("The answer is (C)", ("C", False)),
        ("The answer is B; (C) was a trap", ("B", False)),
        ("\\boxed{B} since (C) is wrong", ("B", True)),
        ("The answer is E, or rather the answer is B", ("B", False)),
        ("I pick (D)", ("D", False)),
        ("\\boxed{maybe} I pick (D)", ("D", True)),
        ("nothing here", (None, False)),
        ("\\boxed{nothing}", (None, True)),
    ],
)
def test_choice_letter_and_box_flag(text, expected):
    assert extract_choice_letter(text, "ABCD") == expected
