"""Text observation and action spaces, and the charset that every relayed message is cleaned to."""

from __future__ import annotations

import copy
import functools
import unicodedata

import numpy as np
from gymnasium.spaces import Text

OBS_MAX_LENGTH = 10_000_000
"""Upper bound of an observation's length: prompts are bounded by the question plus m × stages × limit."""


class TextObservation(str):
    """A ``str`` whose ``dtype`` matches ``gymnasium.spaces.Text``.

    PettingZoo's AEC ``api_test`` compares ``observation_space.dtype`` with ``observation.dtype``, which
    a plain ``str`` does not have; everything else treats this exactly as a ``str``.
    """

    __slots__ = ()
    dtype = np.dtype(str)


@functools.cache
def wide_charset() -> frozenset[str]:
    """Printable code points plus whitespace controls and space/format separators.

    Left out: other control characters, surrogates, private-use and unassigned code points.

    Wide enough for any benchmark text, emoji and scripts; small enough (~145k) for ``Text`` to index.
    """
    keep_controls = set("\t\n\r\x0b\x0c")
    chars = []
    for cp in range(0x110000):
        c = chr(cp)
        if c.isprintable() or c in keep_controls or unicodedata.category(c) in ("Zs", "Zl", "Zp", "Cf"):
            chars.append(c)
    return frozenset(chars)


@functools.cache
def _text_space(max_length: int) -> Text:
    return Text(max_length=max_length, charset=wide_charset())


def own_text_space(max_length: int) -> Text:
    """A Text space with its own RNG, sharing the (large, read-only) charset tables of a cached prototype."""
    space = copy.copy(_text_space(max_length))
    space._np_random = None  # a fresh generator, created on first use or by seed()
    return space


def sanitise(text: str) -> str:
    """Replace characters outside the observation charset with U+FFFD."""
    cs = wide_charset()
    if all(c in cs for c in text):
        return text
    return "".join(c if c in cs else "\ufffd" for c in text)


__all__ = ["OBS_MAX_LENGTH", "TextObservation", "own_text_space", "sanitise", "wide_charset"]
