"""Answer forms that math-verify does not equate by itself: inequalities against intervals, and several
boxed answers against a gold list, set or tuple.

Kept free of sympy (plain string work) so it runs in the caller before any worker is asked.

- **Inequalities.** A solution set in one variable written as an inequality (``-2 \\le x \\le 7``,
  ``x < 3``, ``x<-1 \\text{ or } x>2``) is rewritten as the interval or union it denotes
  (``[-2, 7]``, ``(-\\infty, 3)``, ``(-\\infty, -1) \\cup (2, \\infty)``), for the reply and for the gold
  alike, so either side may use either form. Endpoints and their openness are kept exactly, so a changed
  endpoint or an open/closed flip still differs. Only ``or`` joins parts: a comma between two
  inequalities could mean "and" as well, so such a reply is left as written.
- **Several answers.** The boxes a reply commits to (see ``extract.py``: the last run of boxes joined
  only by connectors such as "and", "or", commas and ``x =``) are read together: one distinct value is
  that value; several are written as one list in the gold's own brackets: ``\\{a, b\\}`` for a braced
  set, ``(a, b)`` for a tuple gold, else ``a, b``, which math-verify reads as a set (order-free). The
  list is then graded like any answer, so a list that drops, adds or changes an element is wrong, and a
  hedge between two values ("either 3 or 4") against a one-value gold is wrong.
"""

from __future__ import annotations

import re

_RELATION_RE = re.compile(
    r"(<=|>=|\\leqslant(?![A-Za-z])|\\geqslant(?![A-Za-z])|\\leq(?![A-Za-z])|\\geq(?![A-Za-z])"
    r"|\\le(?![A-Za-z])|\\ge(?![A-Za-z])|\\lt(?![A-Za-z])|\\gt(?![A-Za-z])|<|>|≤|≥)"
)
_LESS = {"<", "\\lt"}
_LESS_EQ = {"<=", "\\le", "\\leq", "\\leqslant", "≤"}
_GREATER = {">", "\\gt"}
_GREATER_EQ = {">=", "\\ge", "\\geq", "\\geqslant", "≥"}
_OR_RE = re.compile(
    r"\\(?:text|textrm|mathrm|mbox)\s*\{\s*or\s*\}|\\lor(?![A-Za-z])|\\vee(?![A-Za-z])|(?<![A-Za-z\\])or(?![A-Za-z])"
)
_NOISE_RE = re.compile(r"\$|\\(?:left|right)(?:\.|(?![A-Za-z]))|\\displaystyle|\\[,;:! ]")
_VARIABLE_RE = re.compile(r"[A-Za-z]")
_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_INFINITY = "\\infty"
MAX_FORM_CHARS = 300


def _bound_ok(bound: str) -> bool:
    """A bound is a constant: no bare letter (``\\pi``, ``\\sqrt{2}``, ``\\infty`` are fine), no ``=``."""
    return bool(bound) and "=" not in bound and _VARIABLE_RE.search(_COMMAND_RE.sub("", bound)) is None


def _interval(lower: str, lower_closed: bool, upper: str, upper_closed: bool) -> str:
    return f"{'[' if lower_closed else '('}{lower}, {upper}{']' if upper_closed else ')'}"


def _one_side(var_first: bool, op: str, bound: str) -> str:
    """``x op b`` (var_first) or ``b op x`` as an interval."""
    below = op in _LESS or op in _LESS_EQ  # "x < b" or "b < x"
    closed = op in _LESS_EQ or op in _GREATER_EQ
    if below == var_first:  # x < b, x <= b, b > x, b >= x
        return f"(-{_INFINITY}, {bound}{']' if closed else ')'}"
    return f"{'[' if closed else '('}{bound}, {_INFINITY})"


def _part_interval(part: str) -> tuple[str, str] | None:
    """(variable, interval) for one inequality or chain ``a < x <= b``; None for anything else."""
    tokens = [t.strip() for t in _RELATION_RE.split(part)]
    if len(tokens) == 3:
        left, op, right = tokens
        if len(left) == 1 and left.isalpha() and _bound_ok(right):
            return left, _one_side(True, op, right)
        if len(right) == 1 and right.isalpha() and _bound_ok(left):
            return right, _one_side(False, op, left)
        return None
    if len(tokens) != 5:
        return None
    low, op1, var, op2, high = tokens
    if not (len(var) == 1 and var.isalpha() and _bound_ok(low) and _bound_ok(high)):
        return None
    ascending = {op1 in _LESS | _LESS_EQ, op2 in _LESS | _LESS_EQ}
    if ascending == {True}:
        return var, _interval(low, op1 in _LESS_EQ, high, op2 in _LESS_EQ)
    if ascending == {False}:
        return var, _interval(high, op2 in _GREATER_EQ, low, op1 in _GREATER_EQ)
    return None


def inequality_as_interval(text: str) -> str | None:
    """The interval (or union) that a one-variable inequality denotes, else None."""
    if len(text) > MAX_FORM_CHARS or not _RELATION_RE.search(text):
        return None
    body = _NOISE_RE.sub(" ", text).strip().rstrip(".").strip()
    if "," in body:
        return None
    intervals, variables = [], set()
    for part in _OR_RE.split(body):
        found = _part_interval(part.strip())
        if found is None:
            return None
        variables.add(found[0])
        intervals.append(found[1])
    if len(variables) != 1:
        return None
    return " \\cup ".join(intervals)


def split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside any bracket (``\\{`` and ``\\left(`` count as brackets)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


_SEPARATOR_NOISE_RE = re.compile(r"\s|\\!|\\,|[{}]")
_THOUSANDS_RE = re.compile(r"^-?(?:\\\$|\$)?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_SET_RE = re.compile(r"^\\\{(.*)\\\}$", re.DOTALL)
_TUPLE_RE = re.compile(r"^(?:\\left)?\((.*?)(?:\\right)?\)$", re.DOTALL)


def gold_elements(gold: str) -> tuple[str, list[str]]:
    """(shape, elements) of a gold answer: shape "set" for ``\\{..\\}``, "tuple" for one parenthesised
    tuple, "list" for a bare comma list, "one" otherwise (elements is then ``[gold]``)."""
    text = gold.strip()
    parts = split_top_level(text)
    if _THOUSANDS_RE.match(_SEPARATOR_NOISE_RE.sub("", text)):
        return "one", [text]  # 10,\\!080 is one number
    if len(parts) >= 2 and all(parts):
        return "list", parts
    for shape, regex in (("set", _SET_RE), ("tuple", _TUPLE_RE)):
        m = regex.match(text)
        if m and _balanced(m.group(1)):
            inner = split_top_level(m.group(1))
            if len(inner) >= 2 and all(inner) and not any(_INFINITY in p for p in inner):
                return shape, inner
    return "one", [text]


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += 1 if ch in "([{" else -1 if ch in ")]}" else 0
        if depth < 0:
            return False
    return depth == 0


def join_answers(parts: list[str], gold: str) -> str:
    """Several committed answers as one answer written in the gold's brackets (see the module rules)."""
    shape, _ = gold_elements(gold)
    body = ", ".join(parts)
    if shape == "set":
        return f"\\{{{body}\\}}"
    if shape == "tuple":
        return f"({body})"
    return body
