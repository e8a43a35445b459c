"""Final-answer extraction from free-form model text.

Kept free of sympy and math-verify so extraction is cheap, linear-time on any input, and safe to call
anywhere (it never recurses, so 10k nested braces are fine).

Which answer a maths reply commits to, in order of precedence:

1. An explicit final-answer marker ("Final Answer:", "the final answer is") placed after the last box,
   followed by a mathematical object, wins over the boxes: boxes before it were working. From a sentence
   after a marker the object it states is taken, not the sentence: the one it opens with ("7, which is
   3 + 4"), else its last one ("Final Answer: The volume of $ABCDEFGH$ is 120." gives 120).
2. Else the boxes: the last box and the boxes just before it that are joined to it only by connectors
   (commas, "and", "or", ``\\quad``, ``$``, ``x =``, a new list item "2." or "-"). Those are read
   together (see ``forms.py``); any other text between two boxes ends the run, so a corrected answer
   (``\\boxed{3}`` ... "so the final answer is" ``\\boxed{5}``) commits to the last box alone.
3. Else the last "the answer is X" phrase, else GSM8K's "#### X".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ilr_env.tasks.text import _BARE_ARGUMENT, _BOX_RE, _brace_pairs
from ilr_env.tasks.text import last_boxed as _last_boxed

# "the answer is X" / "final answer: X" / "Final Answer: The final answer is $X$." — the text up to the end
# of the line; trailing sentence punctuation is stripped afterwards.
# A lookahead so overlapping phrases ("Final Answer: The final answer is X") yield the innermost, last one.
_ANSWER_IS_RE = re.compile(
    r"(?=(?:final\s+answer|the\s+answer)\s*(?:is|:|=)\s*:?\s*(.{1,1000}))", re.IGNORECASE
)
# After the boxes only an explicit final answer overrides them ("the answer is right" is chatter).
_FINAL_ANSWER_RE = re.compile(r"(?=final\s+answer\s*(?:is|:|=)\s*:?\s*(.{1,1000}))", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"\.\s+(?=[A-Z])")
_HASH_RE = re.compile(r"####\s*(.{1,1000})")
# Fallback phrases are only looked for near the end, which keeps the regex scans linear on huge inputs.
_FALLBACK_TAIL = 20_000
# What may stand between two boxes that are read together.
_CONNECTOR_RE = re.compile(
    r"(?:\s|[$,;&]|\\\\|\\[()\[\]]|\\q?quad(?![A-Za-z])|\\[,;:! ]|(?<![A-Za-z])(?:and|or)(?![A-Za-z])"
    r"|\\(?:text|textrm|mathrm|mbox)\s*\{\s*(?:and|or|,)?\s*\}"
    r"|(?:\\[a-z]+|(?<![A-Za-z])[A-Za-z])(?:_\{?\w+\}?)?\s*="
    r"|(?<=\n)[ \t]*(?:\d{1,2}[.)]|[-*•])(?=\s))*"
)
MAX_CONNECTOR_CHARS = 80
MAX_GROUP = 64
# Inline maths, and numbers as written in prose (sign, currency sign, thousands separators, decimals).
_INLINE_MATH_RE = re.compile(r"\$([^$]{1,500})\$|\\\((.{1,500}?)\\\)")
_PROSE_NUMBER_RE = re.compile(r"-?(?:\\\$)?\d+(?:(?:,|\{,\}|,\\!)\d{3})*(?:\.\d+)?(?:/\d+)?(?![\w])")
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_MATH_HINT_RE = re.compile(r"\d|\\[A-Za-z]")
SENTENCE_WORDS = 3


@dataclass(frozen=True)
class Extraction:
    """An extracted answer and how it was found (``source`` in {"boxed", "answer_is", "hash", "none"}).

    ``parts`` are the answers the reply commits to, in order: several only for a run of boxes.
    """

    answer: str | None
    has_box: bool
    source: str
    parts: tuple[str, ...] = ()


def last_boxed(text: str) -> str | None:
    """Content of the last non-empty, closed box; an empty or unclosed box (a truncated reply) is none."""
    return _last_boxed(text, skip_empty=True)


def boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every closed, non-empty, outermost box, in order. Linear time."""
    found: list[tuple[int, int, str]] = []
    pairs: dict[int, int] | None = None
    for match in _BOX_RE.finditer(text):
        if found and match.start() < found[-1][1]:
            continue  # a box inside the previous one
        arg = match.end()
        if arg < len(text) and text[arg] == "{":
            pairs = _brace_pairs(text) if pairs is None else pairs
            close = pairs.get(arg)
            if close is None:
                continue
            content, end = text[arg + 1 : close].strip(), close + 1
        elif arg > match.start() + len(match.group(0).rstrip()):  # "\\boxed 5": the next bare token
            token = _BARE_ARGUMENT.match(text, arg)
            if token is None:
                continue
            content, end = token.group(0), token.end()
        else:
            continue
        if content:
            found.append((match.start(), end, content))
    return found


def committed_boxes(text: str, found: list[tuple[int, int, str]]) -> list[str]:
    """The last box and the boxes joined to it by connectors only (rule 2 of the module docstring)."""
    group = [found[-1]]
    for prev in reversed(found[:-1]):
        gap = text[prev[1] : group[-1][0]]
        if len(group) >= MAX_GROUP or len(gap) > MAX_CONNECTOR_CHARS or not _CONNECTOR_RE.fullmatch(gap):
            break
        group.append(prev)
    return [content for _, _, content in reversed(group)]


def _clean(answer: str) -> str:
    # A sentence-final period or a trailing "I hope it is correct." style tail is not part of the answer.
    end = _SENTENCE_END_RE.search(answer)
    answer = (answer[: end.start()] if end else answer).strip().rstrip(".").strip()
    if len(answer) >= 2 and answer[0] == "$" and answer[-1] == "$":
        answer = answer.strip("$").strip()
    return answer


def final_object(candidate: str) -> str:
    """The mathematical object a sentence after a marker states: the one it opens with ("7, which is
    3 + 4" -> "7"), else its last one ("The volume of $V$ is 120" -> "120"); the candidate itself when it
    is not a sentence or names no such object."""
    spans = list(_INLINE_MATH_RE.finditer(candidate))
    prose = _INLINE_MATH_RE.sub(lambda m: " " * len(m.group(0)), candidate)  # positions kept
    if len(_WORD_RE.findall(prose)) < SENTENCE_WORDS:
        return candidate
    objects = [(m.start(), (m.group(1) or m.group(2)).strip()) for m in spans]
    objects += [(m.start(), m.group(0)) for m in _PROSE_NUMBER_RE.finditer(prose)]
    objects = sorted(o for o in objects if o[1])
    if not objects:
        return candidate
    return objects[0][1] if objects[0][0] == 0 else objects[-1][1]


def _marker_answer(text: str, after: int, regex: re.Pattern[str] = _ANSWER_IS_RE) -> str | None:
    """The answer after the last marker (``regex``) that starts at or after ``after``, if any."""
    start = max(after, len(text) - _FALLBACK_TAIL)
    matches = list(regex.finditer(text, start))
    if not matches:
        return None
    return final_object(_clean(matches[-1].group(1))) or None


def extract_math_answer(text: str) -> Extraction:
    """The final answer of a maths completion (precedence in the module docstring)."""
    found = boxes(text)
    if found:
        marked = _marker_answer(text, found[-1][1], _FINAL_ANSWER_RE)
        if marked and _MATH_HINT_RE.search(marked):
            return Extraction(marked, True, "answer_is", (marked,))
        parts = committed_boxes(text, found)
        return Extraction(parts[-1], True, "boxed", tuple(parts))
    marked = _marker_answer(text, 0)
    if marked:
        return Extraction(marked, False, "answer_is", (marked,))
    matches = list(_HASH_RE.finditer(text[-_FALLBACK_TAIL:]))
    candidate = _clean(matches[-1].group(1)) if matches else ""
    if candidate:
        return Extraction(candidate, False, "hash", (candidate,))
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
