"""Final-answer extraction from free-form model text.

Kept free of sympy and math-verify so extraction is cheap, linear-time on any input, and safe to call
anywhere (it never recurses, so 10k nested braces are fine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ilr_env.tasks.text import last_boxed as _last_boxed

# "the answer is X" / "final answer: X" / "Final Answer: The final answer is $X$." — the text up to the end
# of the line; trailing sentence punctuation is stripped afterwards.
# A lookahead so overlapping phrases ("Final Answer: The final answer is X") yield the innermost, last one.
_ANSWER_IS_RE = re.compile(
    r"(?=(?:final\s+answer|the\s+answer)\s*(?:is|:|=)\s*:?\s*(.{1,1000}))", re.IGNORECASE
)
_HASH_RE = re.compile(r"####\s*(.{1,1000})")
# Fallback phrases are only looked for near the end, which keeps the regex scans linear on huge inputs.
_FALLBACK_TAIL = 20_000


@dataclass(frozen=True)
class Extraction:
    """An extracted answer and how it was found (``source`` in {"boxed", "answer_is", "hash", "none"})."""

    answer: str | None
    has_box: bool
    source: str


def last_boxed(text: str) -> str | None:
    """Content of the last non-empty, closed box; an empty or unclosed box (a truncated reply) is none."""
    return _last_boxed(text, skip_empty=True)


def _clean(answer: str) -> str:
    answer = answer.strip()
    # A sentence-final period or a trailing "I hope it is correct." style tail is not part of the answer.
    answer = re.split(r"\.\s+(?=[A-Z])", answer, maxsplit=1)[0]
    answer = answer.strip().rstrip(".").strip()
    if len(answer) >= 2 and answer[0] == "$" and answer[-1] == "$":
        answer = answer.strip("$").strip()
    return answer


def extract_math_answer(text: str) -> Extraction:
    """The final answer of a maths completion: last box, else "the answer is X", else GSM8K "#### X"."""
    boxed = last_boxed(text)
    if boxed is not None:
        return Extraction(boxed, True, "boxed")
    tail = text[-_FALLBACK_TAIL:]
    for regex, source in ((_ANSWER_IS_RE, "answer_is"), (_HASH_RE, "hash")):
        matches = list(regex.finditer(tail))
        if matches:
            candidate = _clean(matches[-1].group(1))
            if candidate:
                return Extraction(candidate, False, source)
    return Extraction(None, False, "none")


_LETTER_BOX_RE = re.compile(
    r"^\(?\s*(?:\\text\{|\\textbf\{|\\mathrm\{)?\s*\(?([A-Z])\)?\s*\}?\s*\)?\s*[.:]?$"
)
_ANSWER_LETTER_RES = (
    re.compile(
        r"(?i:answer)\s*(?:is|:)\s*:?\s*(?i:option\s*|choice\s*)?\$?\(?\\?(?:text\{|textbf\{)?\(?"
        r"([A-Z])(?![\w'’])"
    ),
    re.compile(r"(?i:option|choice)\s+\(?([A-Z])\)?\s+(?i:is\s+(?:correct|right))"),
)
# A lone capital letter: "(B)", "B.", "B)" or a bare "B" that is NOT followed by a lower-case word (so the
# article in "A good start is..." and the pronoun in "I think" are never taken for an answer).
_LONE_LETTER_RE = re.compile(r"\(([A-Z])\)|(?<![\w\\])([A-Z])(?![\w'’])(?!\s+[a-z])")


def extract_choice_letter(text: str, valid: str) -> tuple[str | None, bool]:
    """The chosen option letter among ``valid`` (e.g. "ABCD") and whether it came from a box.

    Order of preference: ``\\boxed{B}``, "answer is (B)" / "Answer: B", then the last lone letter.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        m = _LETTER_BOX_RE.match(boxed)
        if m and m.group(1) in valid:
            return m.group(1), True
    for regex in _ANSWER_LETTER_RES:
        hits = [m.group(1) for m in regex.finditer(text) if m.group(1) in valid]
        if hits:
            return hits[-1], boxed is not None
    lone = [m.group(1) or m.group(2) for m in _LONE_LETTER_RE.finditer(text)]
    lone = [x for x in lone if x in valid]
    if lone:
        return lone[-1], boxed is not None
    return None, boxed is not None
