"""Preset names: ``experiments/configs/train/<name>.yaml`` holds ILRConfig files for ``ilr train``,
``experiments/configs/compare/<name>.yaml`` comparison presets for ``ilr compare``.

``--config`` takes a preset name or a path. A wrong name fails with the closest name, and a name of the
other kind says which command runs it, so no caller has to know which folder a name lives in.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from ilr_agents.config import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
Kind = Literal["train", "compare"]


def names(kind: Kind) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


def resolve(kind: Kind, name_or_path: str | Path) -> Path:
    """The YAML file ``name_or_path`` means for ``ilr <kind>``; a ConfigError names the fix otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name.removesuffix(".yaml")
    if (CONFIG_DIR / kind / f"{stem}.yaml").is_file():
        return CONFIG_DIR / kind / f"{stem}.yaml"
    other: Kind = "compare" if kind == "train" else "train"
    if (CONFIG_DIR / other / f"{stem}.yaml").is_file():
        raise ConfigError(
            f"{str(name_or_path)!r} is an `ilr {other}` preset, not an `ilr {kind}` one: "
            f"run `ilr {other} --config {stem}`"
        )
    close = difflib.get_close_matches(stem, names(kind), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"config {str(name_or_path)!r} not found: {hint}pass a YAML file or an `ilr {kind}` preset name "
        f"({', '.join(names(kind))})"
    )
