"""Config files and overrides: YAML with ``extends:``, dotted overrides and ``--set KEY=VALUE``.

Every command (``ilr train``, ``compare``, ``eval``) reads its settings through these, so a preset and a
command line mean the same thing everywhere.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ilr_agents.config_types import ConfigError


def merge(base: dict[str, Any], change: dict[str, Any], replace: tuple[str, ...] = ()) -> dict[str, Any]:
    """``change`` over ``base``, mappings merged key by key, except the top-level keys in ``replace``."""
    out = dict(base)
    for key, value in change.items():
        if key not in replace and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(
    path: str | Path, replace: tuple[str, ...] = (), _seen: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """A YAML mapping; ``extends: NAME`` first reads NAME (a path, or NAME.yaml beside this file) and then
    merges this file over it (see ``merge``), so a preset states only what differs from its parent."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist: pass an existing YAML file")
    if p.resolve() in _seen:
        chain = " -> ".join(str(s) for s in (*_seen, p.resolve()))
        raise ConfigError(f"config file {str(p)!r} extends itself ({chain}): break the cycle")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of field: value")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{str(p)!r}: extends={parent!r} must name one file or preset")
    candidates = [p.parent / parent, p.parent / f"{parent}.yaml"]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise ConfigError(f"{str(p)!r}: extends={parent!r} names no file: expected {candidates[1]}")
    return merge(read_yaml(found, replace, (*_seen, p.resolve())), data, replace)


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` set over ``data``; a dotted key (``grpo.learning_rate``) sets one key of a mapping."""
    out = copy.deepcopy(data)
    for key, value in overrides.items():
        *parents, leaf = str(key).split(".")
        node = out
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}={value!r}: {'.'.join(parents[: i + 1])} is not a mapping")
            node = child
        node[leaf] = value
    return out


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (the one override syntax of ``ilr train``, ``compare`` and ``eval``) as a
    mapping; values are read as YAML (``3``, ``[a, b]``, ``{k: v}``), keys may be dotted. ``1e-4`` is a
    number here, although YAML 1.1 (PyYAML) reads a float without a dot as a string."""
    import re

    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set max_steps=5")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: {text!r} is not a YAML value ({exc})") from exc
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
            value = float(value)
        out[key.strip()] = value
    return out
