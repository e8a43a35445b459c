"""Small text helpers shared by the loaders and the graders, so both read gold answers the same way.

``last_boxed`` is the one box-parsing routine of the project: the graders use it (with ``skip_empty``) to
extract a model's answer, and the loaders use it to read gold answers out of worked solutions (Minerva).
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# A box command not followed by a letter (``\boxedsomething`` is another macro), then optional spaces.
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*")
_BARE_ARGUMENT = re.compile(r"[^\s$]+")


def _brace_pairs(text: str) -> dict[int, int]:
    """Map each ``{`` position to its closing ``}`` in one linear pass (unclosed braces are absent).

    A backslash escapes the next character, so ``\\{`` / ``\\}`` (literal braces) do not count. One pass for
    all boxes keeps hostile inputs (thousands of unclosed ``\\boxed{``) linear rather than quadratic.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def last_boxed(text: str, *, skip_empty: bool = False) -> str | None:
    """The content of the last well-formed ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``), else None.

    Braces nest (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``); an unclosed box is skipped in favour of
    an earlier well-formed one, because truncated generations often end inside a box. With
    ``skip_empty`` an empty box is skipped too (the graders: an empty box is no answer). Linear time.
    """
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    pairs: dict[int, int] | None = None
    for match in reversed(matches):
        arg = match.end()
        if arg < len(text) and text[arg] == "{":
            if pairs is None:
                pairs = _brace_pairs(text)
            close = pairs.get(arg)
            content = None if close is None else text[arg + 1 : close].strip()
        elif arg > match.start() + len(match.group(0).rstrip()):  # "\\boxed 5": the next bare token
            token = _BARE_ARGUMENT.match(text, arg)
            content = token.group(0) if token else None
        else:
            content = None
        if content is not None and (content or not skip_empty):
            return content
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
