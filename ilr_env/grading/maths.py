"""Maths grading: extract the final answer, try cheap exact/numeric checks, then math-verify in a worker.

The rule, in full (extraction precedence in ``extract.py``, answer forms in ``forms.py``):

- The reply's answer is what it commits to: an explicit final-answer marker after the boxes, else the
  last run of boxes joined only by connectors, else a "the answer is" phrase.
- Several committed answers are read together and graded as one list, set or tuple against the gold:
  equal as a set (any order) for a list or ``\\{..\\}`` gold, equal in order for a tuple gold. So a
  dropped, added or changed element is wrong, a hedge ("either 3 or 4") against one value is wrong, and
  for a one-value gold the last box alone is the answer unless a box joined to it commits to another value.
- A one-variable inequality (``-2 \\le x \\le 7``, ``x<-1 \\text{ or } x>2``) is the interval or union
  it denotes, on either side.
- An expression copied from the question that needs evaluating is not an answer (``copied_from_question``),
  unless it is the gold itself, written the same way up to spacing and braces.

Hostile answers (exponent towers, huge or deeply nested LaTeX, control characters) are rejected by cheap
pre-filters before any sympy work; anything else that turns out slow is cut off by the worker pool's
hard deadline. Verdicts on ordinary answers equal math-verify's own (tests/env/test_grading_gold.py).
"""

from __future__ import annotations

import re
import time
import unicodedata
from fractions import Fraction
from typing import Any

from ilr_env.grading.base import Grade
from ilr_env.grading.extract import extract_math_answer
from ilr_env.grading.forms import gold_elements, inequality_as_interval, join_answers
from ilr_env.grading.verify_pool import get_pool

DEFAULT_TIMEOUT_S = 1.5
MAX_COMPLETION_CHARS = 1_000_000
MAX_ANSWER_CHARS = 1_000
MAX_NESTING = 40
MAX_EXPONENT = 100_000
MAX_FACTORIAL = 5_000
MAX_SHOWN_CHARS = 2_000
MAX_ELEMENTWISE = 8  # golds with more elements are compared as one list only
ELEMENTWISE_BUDGET = 1  # element-by-element comparison starts no call after this many single-call timeouts

_NOISE_RE = re.compile(r"\\left|\\right|\\displaystyle|\\[,;:! ]|\s+|\$")
_NUMBER_RE = re.compile(r"^-?(?:\d+(?:\.\d+)?|\.\d+)$")
_FRACTION_RE = re.compile(r"^(-)?(?:\\frac\{(-?\d+)\}\{(\d+)\}|(-?\d+)/(\d+))$")
_POWER_RE = re.compile(r"\^|\*\*")
_FACTORIAL_RE = re.compile(r"(\d+)\s*!")
_INT_RE = re.compile(r"\d+")
# A value as people write it: sign, currency sign, digits with thousands separators, decimals, a unit.
_THIN_SPACE_RE = re.compile(r"\\[,!]|\\(?:left|right|displaystyle)(?![A-Za-z])")
_WIDE_SPACE_RE = re.compile(r"\\[;: ]|~")
_CURRENCY_RE = re.compile(r"^(-?)\s*(?:\\\$|\$|£|€|¥|\\pounds|\\euro|\\textdollar)\s*")
_UNIT_RE = re.compile(
    r"(?:\s*\\(?:text|textrm|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .'/-]*\}"
    r"|\s+[A-Za-z]{2,}(?:\s+[A-Za-z]+){0,2}\.?)$"
)
_GROUPED_RE = re.compile(r"^-?(?:\d{1,3}(?:(?:,|\{,\}|\s)\d{3})+|\d+)(?:\.\d+)?$|^-?\.\d+$")
# What needs evaluating: arithmetic operators (a minus only between operands), roots, fractions, powers,
# factorials, functions, and juxtaposed products such as 2(3).
_OPERATOR_RE = re.compile(
    r"[+*/^×÷·!]|(?<=[\w)}\]])\s*-|\\(?:times|cdot|div|frac|dfrac|tfrac|sqrt|binom|pm|mp|sum|prod|int|log|ln"
    r"|sin|cos|tan|exp|cdots)(?![A-Za-z])|\d\s*\(|\)\s*[\d(]|\bmod\b"
)


_SINGLE_BRACED_RE = re.compile(r"\{(\\?[^{}\\])\}")


def canonical(answer: str) -> str:
    """``normalise`` plus braces around one character dropped (``\\sqrt{2}`` as ``\\sqrt2``)."""
    return _SINGLE_BRACED_RE.sub(r"\1", normalise(answer))


def normalise(answer: str) -> str:
    """Spacing and sizing commands removed, ``\\dfrac``/``\\tfrac`` as ``\\frac``, no trailing period."""
    text = _NOISE_RE.sub("", answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.rstrip(".")


def _as_number(text: str) -> tuple[Fraction, bool] | None:
    """(value, is_integer_literal) for plain integers, decimals and simple fractions; else None."""
    if len(text) > 50:
        return None
    if _NUMBER_RE.match(text):
        return Fraction(text), "." not in text
    m = _FRACTION_RE.match(text)
    if m:
        num, den = (m.group(2), m.group(3)) if m.group(2) is not None else (m.group(4), m.group(5))
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
        return (-value if m.group(1) else value), False
    return None


def _strip_control(text: str) -> str:
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def _max_nesting(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            best = max(best, depth)
        elif ch in "})]":
            depth = max(0, depth - 1)
    return best


_TOKEN_RE = re.compile(r"\(?-?[\w.\\]+")


def _exponent_after(text: str, pos: int) -> tuple[str, int]:
    """The exponent starting at ``pos`` (just after ``^`` or ``**``), a braced group or one token, and
    the position just past it."""
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos < len(text) and text[pos] == "{":
        depth = 0
        for i in range(pos, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[pos + 1 : i], i + 1
        return text[pos + 1 :], len(text)
    m = _TOKEN_RE.match(text, pos)
    return (m.group(0), m.end()) if m else ("", pos)


def unsafe_reason(answer: str) -> str | None:
    """Why an answer is too expensive to hand to sympy (None when it looks ordinary)."""
    if len(answer) > MAX_ANSWER_CHARS:
        return "rejected:too_long"
    if _max_nesting(answer) > MAX_NESTING:
        return "rejected:too_deep"
    for m in _POWER_RE.finditer(answer):
        exponent, end = _exponent_after(answer, m.end())
        if _POWER_RE.search(exponent) or _POWER_RE.match(answer[end:].lstrip(" ")):
            return "rejected:power_tower"
        if any(len(d) > 6 or int(d) > MAX_EXPONENT for d in _INT_RE.findall(exponent)):
            return "rejected:huge_exponent"
    for m in _FACTORIAL_RE.finditer(answer):
        if len(m.group(1)) > 6 or int(m.group(1)) > MAX_FACTORIAL:
            return "rejected:huge_factorial"
    return None


def plain_value(answer: str) -> tuple[Fraction, bool] | None:
    """(value, is_integer_literal) of a number written as people write values, else None.

    Accepts a sign, a currency sign (``\\$``, ``$``, ``£``, ``€``), thousands separators (``2,000``,
    ``2{,}000``, ``2,\\!000``, ``2 000``), decimals (``2000.00``) and a trailing unit (``2000 steps``,
    ``5\\text{ cm}``); anything with an operator is not a plain value.
    """
    if len(answer) > 100:
        return None
    text = _WIDE_SPACE_RE.sub(" ", _THIN_SPACE_RE.sub("", answer)).strip()
    m = _CURRENCY_RE.match(text)
    sign = ""
    if m:
        sign, text = m.group(1), text[m.end() :]
    text = _UNIT_RE.sub("", text).strip()
    if not _GROUPED_RE.match(text):
        return None
    digits = re.sub(r"[,{}\s]", "", text)
    value = Fraction(digits)
    if sign and value < 0:
        return None  # "-$-5": two signs
    return (-value if sign else value), "." not in digits


def _fast_verdict(gold: str, pred: str) -> bool | None:
    """True/False when a string or plain-number comparison settles it; None when math-verify must decide."""
    g, p = normalise(gold), normalise(pred)
    if g and g == p:
        return True
    gv, pv = plain_value(gold), plain_value(pred)
    if gv is not None and pv is not None:
        # Two written values (decimals included): equal or not, math-verify has nothing to add, and it
        # would misread some ("1\\,018.0" as 1 * 18.0).
        return gv[0] == pv[0]
    gn, pn = _as_number(g), _as_number(p)
    if gn is None or pn is None:
        return None
    if gn[0] == pn[0]:
        return True
    if gn[1] and pn[1]:
        return False  # two different integer literals: math-verify can never equate them
    return None


def copied_from_question(question: Any, pred: str) -> bool:
    """True when the answer is an expression copied verbatim from the question ("5 - 3" in "Find 5 - 3.").

    math-verify evaluates expressions, so without this check restating the problem scores as solving it;
    an RL policy finds that quickly (measured: an ILR agent in cpu-long learned "Your final answer is 4 *
    7.").
    Only what needs evaluating (an operator, a root, a fraction...) counts as a copy: a value such as
    ``2,000`` or ``\\$18`` that occurs in the question can be the real answer, however it is formatted.
    """
    if not _OPERATOR_RE.search(pred) or plain_value(pred) is not None:
        return False
    p = canonical(pred)
    return len(p) >= 3 and p in canonical(str(getattr(question, "prompt", "") or ""))


def _shown(answer: str | None) -> str | None:
    return None if answer is None else answer[:MAX_SHOWN_CHARS]


def committed_parts(parts: tuple[str, ...], gold: str) -> list[str]:
    """The answers a reply commits to, in its order; against a one-value gold a value written twice is
    one answer (a list gold may repeat an element, ``(1,1,2)``, so its repeats are kept)."""
    cleaned = [p for p in (_strip_control(p).strip() for p in parts) if p]
    if gold_elements(gold)[0] != "one":
        return cleaned
    distinct: list[str] = []
    for part in cleaned:
        if canonical(part) not in {canonical(d) for d in distinct}:
            distinct.append(part)
    return distinct


def committed_answer(question: Any, parts: list[str]) -> str:
    """The answer the committed parts make together: one part is itself, several are one list written in
    the gold's brackets."""
    if len(parts) <= 1:
        return parts[0] if parts else ""
    return join_answers(parts, str(question.answer))


def _elementwise(gold: str, parts: list[str], timeout: float) -> bool:
    """Several answers against a gold list element by element, for lists math-verify reads only as text
    (``E_{1},E_{2}``): a tuple in order, a set or list in any order, each gold element used once."""
    shape, elements = gold_elements(gold)  # a one-value gold has one element, and parts are several
    if len(elements) != len(parts) or len(elements) > MAX_ELEMENTWISE:
        return False
    deadline = time.monotonic() + ELEMENTWISE_BUDGET * timeout

    def equal(g: str, p: str) -> bool:
        return time.monotonic() < deadline and _verdict(g, p, timeout)[0]

    if shape == "tuple":
        return all(map(equal, elements, parts))
    unused = list(elements)
    for part in parts:
        match = next((g for g in unused if equal(g, part)), None)
        if match is None:
            return False
        unused.remove(match)
    return True


def _verdict(gold: str, pred: str, timeout: float) -> tuple[bool, str, str | None]:
    """(correct, reason, unsafe reason) for two answers, inequalities read as the intervals they denote."""
    gold = inequality_as_interval(gold) or gold
    pred = inequality_as_interval(pred) or pred
    fast = _fast_verdict(gold, pred)
    if fast is not None:
        return fast, ("match" if fast else "mismatch"), None
    unsafe = unsafe_reason(pred)
    if unsafe is not None and unsafe_reason(gold) is None:
        return False, unsafe, unsafe
    status, result = get_pool().call("verify", gold, f"\\boxed{{{pred}}}", timeout=timeout)
    if status == "ok":
        return bool(result[0]), ("match" if result[0] else "mismatch"), None
    return False, status, None


def _reasoning_gym_match(question: Any, pred: str, timeout: float) -> bool:
    meta = getattr(question, "metadata", None) or {}
    if not (meta.get("grader") == "reasoning_gym" and "rg_dataset" in meta and "rg_entry" in meta):
        return False
    if len(pred) > MAX_ANSWER_CHARS:
        return False
    status, score = get_pool().call("rg_score", meta["rg_dataset"], pred, meta["rg_entry"], timeout=timeout)
    return status == "ok" and score >= 1.0


def grade_math(question: Any, completion: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Grade:
    """Grade a maths completion against ``question.answer`` (or a reasoning-gym entry's own rule)."""
    if len(completion) > MAX_COMPLETION_CHARS:
        return Grade(False, 0.0, None, "rejected:completion_too_long")
    extraction = extract_math_answer(completion)
    has_box = extraction.has_box
    if extraction.answer is None:
        return Grade(False, 0.0, None, "no_answer", has_box)
    gold = str(question.answer)
    parts = committed_parts(extraction.parts or (extraction.answer,), gold)
    pred = committed_answer(question, parts)
    verdict, reason, unsafe = _verdict(gold, pred, timeout)
    if unsafe is not None:
        return Grade(False, 0.0, _shown(pred), unsafe, has_box)
    if not verdict and len(parts) > 1 and _elementwise(gold, parts, timeout):
        verdict, reason = True, "match:elementwise"
    if verdict and canonical(pred) != canonical(gold) and copied_from_question(question, pred):
        return Grade(False, 0.0, _shown(pred), "rejected:copied_from_question", has_box)
    if not verdict and _reasoning_gym_match(question, pred, timeout):
        return Grade(True, 1.0, _shown(pred), "match:reasoning_gym", has_box)
    return Grade(verdict, 1.0 if verdict else 0.0, _shown(pred), reason, has_box)
