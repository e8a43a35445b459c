"""Small text helpers shared by the loaders and the graders, so both read gold answers the same way.

``last_boxed`` is the one brace-matching routine of the project: the maths grader reuses it to extract a
model's answer, and the loaders use it to read gold answers out of worked solutions (Minerva, MATH).
"""

from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _braced_from(text: str, start: int) -> str | None:
    """Content of the brace group opening at ``text[start]``, or None when it never closes.

    Backslash-escaped braces (``\\{``, ``\\}``) are literal characters in LaTeX, so they do not count.
    """
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def _boxed_at(text: str, pos: int, command: str) -> str | None:
    """Argument of the box command found at ``pos``: ``\\boxed{...}`` (nested braces) or ``\\boxed 5``."""
    i = pos + len(command)
    if i < len(text) and text[i].isalpha():  # e.g. \boxedsomething: a different macro
        return None
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] == "{":
        return _braced_from(text, i)
    if i > pos + len(command):  # "\boxed 5": the argument is the next token, ending at $ or whitespace
        token = re.match(r"[^\s$]+", text[i:])
        return token.group(0) if token else None
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last well-formed ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, else None.

    Braces nest (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``); an unclosed box is skipped in favour of
    an earlier well-formed one, because truncated generations often end inside a box.
    """
    positions = sorted(
        ((m.start(), cmd) for cmd in _BOX_COMMANDS for m in re.finditer(re.escape(cmd), text)), reverse=True
    )
    for pos, cmd in positions:
        content = _boxed_at(text, pos, cmd)
        if content is not None:
            return content.strip()
    return None


def gsm8k_gold(answer_field: str) -> str:
    """GSM8K's gold answer: the text after the last ``####``, without thousands separators."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer has no '####' marker: {answer_field[-80:]!r}")
    return answer_field.rsplit("####", 1)[1].strip().replace(",", "")


def normalise_number(value: object) -> str:
    """A canonical text form for numeric golds written as floats (AMC's ``27.0`` -> ``27``).

    Non-numeric text comes back stripped and otherwise unchanged, so this is safe on any gold.
    """
    text = str(value).strip().replace(",", "")
    if not _NUMBER.fullmatch(text):
        return str(value).strip()
    number = float(text)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)
