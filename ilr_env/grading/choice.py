"""Multiple-choice grading: which option letter did the completion pick?"""

from __future__ import annotations

import string
from typing import Any

from ilr_env.grading.base import Grade
from ilr_env.grading.extract import extract_choice_letter, last_boxed
from ilr_env.grading.maths import normalise


def _gold_letter(answer: Any, n_choices: int) -> str:
    text = str(answer).strip().strip("()").strip()
    if text.isdigit() and int(text) < n_choices:
        return string.ascii_uppercase[int(text)]
    if len(text) == 1 and text.upper() in string.ascii_uppercase:
        return text.upper()
    raise ValueError(
        f"choice gold answer {answer!r} is neither an option letter nor a 0-based index; "
        "store the letter (e.g. 'B') in Question.answer"
    )


def grade_choice(question: Any, completion: str) -> Grade:
    """Correct when the picked letter is the gold letter; a boxed option text counts as its letter."""
    choices = list((getattr(question, "metadata", None) or {}).get("choices") or [])
    n = len(choices) if choices else 4
    valid = string.ascii_uppercase[:n]
    gold = _gold_letter(question.answer, n)
    letter, has_box = extract_choice_letter(completion, valid)
    if letter is None and choices:
        boxed = last_boxed(completion)
        if boxed is not None:
            by_text = {normalise(str(c)).lower(): valid[i] for i, c in enumerate(choices)}
            letter = by_text.get(normalise(boxed).lower())
    if letter is None:
        return Grade(False, 0.0, None, "no_answer", has_box)
    correct = letter == gold
    return Grade(correct, 1.0 if correct else 0.0, letter, "match" if correct else "mismatch", has_box)
