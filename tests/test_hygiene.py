"""The package's text (code, docstrings, --help, presets) points only at files this repository has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ilr_env", "ilr_agents", "baselines", "experiments")
WRITTEN_BY_RUNS = {"report.md", "results.md"}  # files our commands write, not files we cite


def package_texts() -> list[Path]:
    return sorted(
        p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*") if p.suffix in {".py", ".yaml"} and p.is_file()
    )


@pytest.mark.parametrize("path", package_texts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_text_points_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\breference/|\.\./shared|\bshared/(reference|data)", text), path
    for name in re.findall(r"[\w./-]*\w\.md\b", text):
        if Path(name).name in WRITTEN_BY_RUNS:
            continue
        assert (ROOT / name).is_file() or any(ROOT.glob(f"**/{name}")), f"{path} cites {name}"
