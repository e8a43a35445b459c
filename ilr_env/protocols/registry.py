"""The protocols ``make(..., protocol=name)`` can use, by name (apart from ``base`` so templates can ask)."""

from __future__ import annotations

import difflib
from typing import Any

from ilr_env.errors import ILRConfigError

_REGISTRY: dict[str, Any] = {}  # name -> base.Protocol


def add(protocol: Any, *, overwrite: bool = False) -> None:
    if protocol.name in _REGISTRY and not overwrite:
        raise ILRConfigError(
            f"protocol {protocol.name!r} is already registered; pass overwrite=True to replace it"
        )
    _REGISTRY[protocol.name] = protocol


def unregister_protocol(name: str) -> None:
    """Remove a registered protocol (tests use it to clean up)."""
    if name not in _REGISTRY:
        raise ILRConfigError(f"protocol {name!r} is not registered; registered: {protocol_names()}")
    del _REGISTRY[name]


def registered() -> tuple[Any, ...]:
    return tuple(_REGISTRY.values())


def protocol_names() -> list[str]:
    return list(_REGISTRY)


def get_protocol(name: Any) -> Any:
    """The registered protocol called ``name``; an unknown name raises with the closest known one."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    known = protocol_names()
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ILRConfigError(f"protocol must be one of {known}, got {name!r}{hint}")


__all__ = ["add", "get_protocol", "protocol_names", "registered", "unregister_protocol"]
