"""Spread across seeds of several `ilr compare` runs of one preset (one seed each, run side by side).

A claim about a 10-step CPU run holds only if it holds for every seed, so this prints, per evaluated model,
each seed's stated-answer and lenient accuracy and mean length, then each seed's paired McNemar tests.

    python experiments/scripts/seed_spread.py runs/cpu-demo-seed0 runs/cpu-demo-seed1 runs/cpu-demo-seed2
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

PAIRS = [
    ("base smollm2-135m", "grpo agent_0"),
    ("base smollm2-135m", "ilr agent_0"),
    ("base smollm2-135m", "ilr agent_1"),
    ("grpo agent_0", "ilr agent_0"),
    ("grpo agent_0", "ilr agent_1"),
]


def outcomes(run: Path) -> dict[str, dict[str, Any]]:
    """Model label -> its outcome columns on the run's (single) benchmark."""
    evaluations = json.loads((run / "results.json").read_text())["evaluations"]
    (by_label,) = evaluations.values()
    return {label: runs[0] for label, runs in by_label.items()}


def mcnemar(a: list[bool], b: list[bool]) -> tuple[int, int, float]:
    """Questions a got right and b lost, b gained, and the exact two-sided p-value."""
    lost = sum(x and not y for x, y in zip(a, b, strict=True))
    gained = sum(y and not x for x, y in zip(a, b, strict=True))
    n = lost + gained
    return lost, gained, binomtest(min(lost, gained), n, 0.5).pvalue if n else 1.0


def main(paths: list[str]) -> None:
    runs = [outcomes(Path(p)) for p in paths]
    for label in runs[0]:
        for column in ("correct", "lenient", "length"):
            per_seed = [
                sum(r[label][column]) / len(r[label][column]) * (1 if column == "length" else 100)
                for r in runs
            ]
            shown = ", ".join(f"{v:.1f}" for v in per_seed)
            print(f"{label:20s} {column:8s} [{shown}] mean {statistics.mean(per_seed):.1f}")
    for path, run in zip(paths, runs, strict=True):
        for a, b in PAIRS:
            for column in ("lenient", "correct"):
                lost, gained, p = mcnemar(run[a][column], run[b][column])
                print(f"{path}: {a} -> {b} ({column}): lost {lost}, gained {gained}, p = {p:.2g}")


if __name__ == "__main__":
    main(sys.argv[1:])
