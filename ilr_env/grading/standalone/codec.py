"""The value codec both sides of the sandbox share: plain data as tagged JSON lists, and message framing.

The judge sends the trusted tests' arguments to the program with it and decodes the program's return values
with it; the program side (``runner.py``) does the reverse. Only plain data crosses: None, bool, int, float,
complex, str, bytes, tuple, list, dict, set, frozenset and the built-in types themselves, each rebuilt as
its exact built-in type, so a subclass with a rigged ``__eq__`` arrives as its plain value. Anything else is
an *opaque handle*, which each side turns into an object of its own choosing (``opaque`` when encoding,
``handle`` when decoding).
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
# Built-in types themselves cross as values (tests pass ``int`` or ``str`` as an argument): only these, by
# name, each side rebuilding its own genuine type.
TYPES: dict[str, type] = {
    t.__name__: t
    for t in (
        int,
        float,
        complex,
        bool,
        str,
        bytes,
        bytearray,
        list,
        tuple,
        dict,
        set,
        frozenset,
        type,
        object,
    )
}
TYPES["NoneType"] = type(None)
_TYPE_NAMES = {t: name for name, t in TYPES.items()}


class MalformedValue(ValueError):
    """A value or message that does not follow the codec (from a broken or hostile program)."""


# Plain scalars in the order encode tests them (bool before its base class int).
_SCALARS_OUT: tuple[tuple[Any, Callable[[Any], list[Any]]], ...] = (
    (bool, lambda x: ["b", bool(x)]),
    (int, lambda x: ["i", str(int(x))]),
    (float, lambda x: ["f", repr(float(x))]),
    (complex, lambda x: ["c", repr(float(x.real)), repr(float(x.imag))]),
    (str, lambda x: ["s", str(x)]),
    ((bytes, bytearray), lambda x: ["y", bytes(x).hex()]),
)


def encode(x: Any, opaque: Callable[[Any], list[Any]], depth: int = 0) -> list[Any]:
    """``x`` as tagged plain data; ``opaque(x)`` encodes what is not plain data (or raises)."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if x is None:
        return ["n"]
    if type(x) is type and x in _TYPE_NAMES:
        return ["T", _TYPE_NAMES[x]]
    for kind, scalar in _SCALARS_OUT:
        if isinstance(x, kind):
            return scalar(x)
    if isinstance(x, dict):
        return ["d", [[encode(k, opaque, depth + 1), encode(v, opaque, depth + 1)] for k, v in x.items()]]
    for tag, kind in _CONTAINERS.items():
        if isinstance(x, kind):
            return [tag, [encode(v, opaque, depth + 1) for v in x]]
    return opaque(x)


def _one_str(rest: list[Any], pattern: re.Pattern[str] | None = None) -> str:
    if len(rest) != 1 or type(rest[0]) is not str:
        raise MalformedValue("malformed value")
    if pattern is not None and not pattern.fullmatch(rest[0].lower()):
        raise MalformedValue("malformed number")
    return rest[0]


def _none(rest: list[Any]) -> None:
    if rest:
        raise MalformedValue("malformed value")


def _bool(rest: list[Any]) -> bool:
    if len(rest) != 1 or type(rest[0]) is not bool:
        raise MalformedValue("malformed value")
    return rest[0]


def _complex(rest: list[Any]) -> complex:
    if len(rest) != 2:
        raise MalformedValue("malformed value")
    return complex(float(_one_str(rest[:1], _FLOAT_RE)), float(_one_str(rest[1:], _FLOAT_RE)))


def _type(rest: list[Any]) -> type:
    name = _one_str(rest)
    if name not in TYPES:
        raise MalformedValue(f"unknown type {name[:50]!r}")
    return TYPES[name]


_SCALARS_IN: dict[str, Callable[[list[Any]], Any]] = {
    "n": _none,
    "b": _bool,
    "s": _one_str,
    "i": lambda rest: int(_one_str(rest, _INT_RE)),
    "f": lambda rest: float(_one_str(rest, _FLOAT_RE)),
    "c": _complex,
    "y": lambda rest: bytes.fromhex(_one_str(rest)),
    "T": _type,
}


def decode(
    x: Any, handle: Callable[[list[Any]], Any], depth: int = 0, tick: Callable[[], None] | None = None
) -> Any:
    """Strictly rebuild plain data; ``handle(rest)`` turns an ``["h", *rest]`` handle into an object.

    ``tick()`` runs before each insertion into a set or dict, so a caller can stop a decode that overruns
    its deadline: values with colliding hashes take quadratic time, one insertion at a time.
    """
    if depth > MAX_DEPTH or not isinstance(x, list) or not x or not isinstance(x[0], str):
        raise MalformedValue("malformed value")
    tag, rest = x[0], x[1:]
    try:
        if tag in _SCALARS_IN:
            return _SCALARS_IN[tag](rest)
        if tag in _CONTAINERS and len(rest) == 1 and type(rest[0]) is list:
            items = (decode(v, handle, depth + 1, tick) for v in rest[0])
            return _CONTAINERS[tag](_ticking(items, tick) if tick is not None and tag in "SF" else items)
        if tag == "d" and len(rest) == 1 and type(rest[0]) is list:
            return _decode_dict(rest[0], handle, depth, tick)
        if tag == "h":
            return handle(rest)
    except MalformedValue:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:  # e.g. an unhashable set item, bad hex
        raise MalformedValue(f"bad value: {exc}") from None
    raise MalformedValue(f"unknown value tag {tag!r}")


def _ticking(items: Any, tick: Callable[[], None]) -> Any:
    for item in items:
        tick()
        yield item


def _decode_dict(
    items: list[Any], handle: Callable[[list[Any]], Any], depth: int, tick: Any
) -> dict[Any, Any]:
    out = {}
    for pair in items:
        if tick is not None:
            tick()
        if type(pair) is not list or len(pair) != 2:
            raise MalformedValue("malformed dict item")
        out[decode(pair[0], handle, depth + 1, tick)] = decode(pair[1], handle, depth + 1, tick)
    return out


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
