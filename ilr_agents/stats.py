"""Uncertainty for small evaluation sets: the demo's 100-question numbers mean little without intervals.

Bootstrap intervals resample questions (and seeds, when several runs exist); McNemar's exact test compares
two methods on the *same* questions, which is far more sensitive than comparing two unpaired accuracies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    correct: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval over questions.

    ``correct`` may be 1-D (questions) or 2-D (seeds × questions); in the 2-D case seeds and questions are
    both resampled, so the interval covers run-to-run variation too.
    """
    x = np.asarray(correct, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one observation; got an empty array")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    rng = np.random.default_rng(seed)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"correct must be 1-D or 2-D (seeds x questions), got shape {x.shape}")
    n_seeds, n_q = x.shape
    seed_idx = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    q_idx = rng.integers(0, n_q, size=(resamples, n_q))
    means = x[seed_idx[:, :, None], q_idx[:, None, :]].mean(axis=(1, 2))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(x.mean()), float(lo), float(hi)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict[str, float]:
    """Two-sided exact McNemar test on paired 0/1 outcomes of methods a and b over the same questions."""
    a_arr = np.asarray(a, dtype=bool)
    b_arr = np.asarray(b, dtype=bool)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired outcomes need equal shapes, got {a_arr.shape} and {b_arr.shape}")
    only_a = int(np.sum(a_arr & ~b_arr))
    only_b = int(np.sum(~a_arr & b_arr))
    discordant = only_a + only_b
    if discordant == 0:
        p = 1.0
    else:
        k = min(only_a, only_b)
        tail = sum(math.comb(discordant, i) for i in range(k + 1)) / 2.0**discordant
        p = min(1.0, 2.0 * tail)
    return {"only_a": only_a, "only_b": only_b, "p_value": p}


def bootstrap_average_ci(
    groups: Sequence[Sequence[float] | np.ndarray],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The unweighted mean of several benchmarks' accuracies, with a stratified percentile bootstrap interval.

    Each group is one benchmark's outcomes, 1-D (questions) or 2-D (seeds x questions, the same seeds in
    every group). A resample draws questions within each benchmark independently (so a 60-question AIME
    keeps its weight of one benchmark, as in the paper's "Avg" column) and, with several seeds, one seed
    draw shared by all benchmarks (seed k is the same training run everywhere).
    """
    arrays = [np.atleast_2d(np.asarray(g, dtype=float)) for g in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("bootstrap_average_ci needs at least one non-empty group")
    if len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(f"every group needs the same number of seeds, got {[a.shape[0] for a in arrays]}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    rng = np.random.default_rng(seed)
    n_seeds = arrays[0].shape[0]
    seed_idx = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    total = np.zeros(resamples)
    for x in arrays:
        q_idx = rng.integers(0, x.shape[1], size=(resamples, x.shape[1]))
        total += x[seed_idx[:, :, None], q_idx[:, None, :]].mean(axis=(1, 2))
    means = total / len(arrays)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(np.mean([x.mean() for x in arrays])), float(lo), float(hi)
