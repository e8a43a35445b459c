"""The value codec both sides of the sandbox share: plain data as tagged JSON lists, and message framing.

The judge sends the trusted tests' arguments to the program with it and decodes the program's return values
with it; the program side (``runner.py``) does the reverse. Only plain data crosses: None, bool, int, float,
complex, str, bytes, tuple, list, dict, set and frozenset, each rebuilt as its exact built-in type, so a
subclass with a rigged ``__eq__`` arrives as its plain value. Anything else is an *opaque handle*, which
each side turns into an object of its own choosing (``opaque`` when encoding, ``handle`` when decoding).
Decoding is strict: a malformed value raises ``MalformedValue`` and is never half-trusted.

Standard library only: this module is loaded by path inside the sandbox, never as part of the package.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 200
MAX_MESSAGE = 8 * 1024 * 1024
HEADER = struct.Struct(">I")  # every message is a 4-byte big-endian length, then that many bytes of JSON
_INT_RE = re.compile(r"-?\d{1,4000}")
_FLOAT_RE = re.compile(r"^-?(?:inf|nan|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)$")
_CONTAINERS: dict[str, type] = {"t": tuple, "l": list, "F": frozenset, "S": set}


class MalformedValue(ValueError):
    """A value or message that does not follow the codec (from a broken or hostile program)."""


def encode(x: Any, opaque: Callable[[Any], list[Any]], depth: int = 0) -> list[Any]:
    """``x`` as tagged plain data; ``opaque(x)`` encodes what is not plain data (or raises)."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if x is None:
        return ["n"]
    if isinstance(x, bool):
        return ["b", bool(x)]
    if isinstance(x, int):
        return ["i", str(int(x))]
    if isinstance(x, float):
        return ["f", repr(float(x))]
    if isinstance(x, complex):
        return ["c", repr(float(x.real)), repr(float(x.imag))]
    if isinstance(x, str):
        return ["s", str(x)]
    if isinstance(x, (bytes, bytearray)):
        return ["y", bytes(x).hex()]
    if isinstance(x, dict):
        return ["d", [[encode(k, opaque, depth + 1), encode(v, opaque, depth + 1)] for k, v in x.items()]]
    for tag, kind in _CONTAINERS.items():
        if isinstance(x, kind):
            return [tag, [encode(v, opaque, depth + 1) for v in x]]
    return opaque(x)


def decode(x: Any, handle: Callable[[list[Any]], Any], depth: int = 0) -> Any:
    """Strictly rebuild plain data; ``handle(rest)`` turns an ``["h", *rest]`` handle into an object."""
    if depth > MAX_DEPTH or not isinstance(x, list) or not x or not isinstance(x[0], str):
        raise MalformedValue("malformed value")
    tag, rest = x[0], x[1:]
    try:
        if tag == "n" and not rest:
            return None
        if tag == "b" and len(rest) == 1 and type(rest[0]) is bool:
            return rest[0]
        if tag == "s" and len(rest) == 1 and type(rest[0]) is str:
            return rest[0]
        if tag == "i" and len(rest) == 1 and type(rest[0]) is str and _INT_RE.fullmatch(rest[0]):
            return int(rest[0])
        if tag == "f" and len(rest) == 1 and type(rest[0]) is str and _FLOAT_RE.match(rest[0].lower()):
            return float(rest[0])
        if tag == "c" and len(rest) == 2 and all(type(v) is str and _FLOAT_RE.match(v.lower()) for v in rest):
            return complex(float(rest[0]), float(rest[1]))
        if tag == "y" and len(rest) == 1 and type(rest[0]) is str:
            return bytes.fromhex(rest[0])
        if tag in _CONTAINERS and len(rest) == 1 and type(rest[0]) is list:
            return _CONTAINERS[tag](decode(v, handle, depth + 1) for v in rest[0])
        if tag == "d" and len(rest) == 1 and type(rest[0]) is list:
            out = {}
            for pair in rest[0]:
                if type(pair) is not list or len(pair) != 2:
                    raise MalformedValue("malformed dict item")
                out[decode(pair[0], handle, depth + 1)] = decode(pair[1], handle, depth + 1)
            return out
        if tag == "h":
            return handle(rest)
    except MalformedValue:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:  # e.g. an unhashable set item, bad hex
        raise MalformedValue(f"bad value: {exc}") from None
    raise MalformedValue(f"unknown value tag {tag!r}")


def frame(message: Any) -> bytes:
    """One protocol message: its JSON behind a length header."""
    data = json.dumps(message).encode()
    return HEADER.pack(len(data)) + data


def message_size(header: bytes) -> int:
    """The length a header announces; over ``MAX_MESSAGE`` is a protocol violation."""
    (size,) = HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise MalformedValue(f"message of {size} bytes is over the {MAX_MESSAGE}-byte limit")
    return size
