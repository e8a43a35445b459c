"""What every benchmark case shares: interleaved repeats, robust summaries, targets and profiles.

Why interleave: these machines are shared and noisy, so an absolute throughput means little; a ratio of
two arms measured A, B, A, B in one process, one ratio per repeat, cancels most of the drift. Figures are
reported as median with the inter-quartile range and min/max, never as a single run.
"""

from __future__ import annotations

import cProfile
import io
import math
import pstats
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

TargetOp = Literal[">=", "<=", "<"]
Status = Literal["ok", "skipped", "error"]


class BenchError(ValueError):
    """A benchmark was asked for something it cannot do (unknown case, bad repeat count)."""


@dataclass(frozen=True)
class Measurement:
    """One timed run of one arm: ``units`` of work (answers, tokens, episodes) in ``seconds``."""

    seconds: float
    units: float

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class Stat:
    """Median and spread of repeated figures (IQR by the inclusive quartile method; min/max too)."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int
    values: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        vals = [float(v) for v in values]
        if not vals:
            raise BenchError("cannot summarise zero measurements: run at least one repeat")
        if len(vals) == 1:
            q1 = q3 = vals[0]
        else:
            q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
        return cls(statistics.median(vals), q1, q3, min(vals), max(vals), len(vals), vals)

    def short(self, digits: int = 3) -> str:
        """``median [q1, q3]`` for the report table."""
        return f"{_fmt(self.median, digits)} [{_fmt(self.q1, digits)}, {_fmt(self.q3, digits)}]"


def _fmt(value: float, digits: int) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 10**5 or abs(value) < 10**-3):
        return f"{value:.{digits}g}"
    return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"


@dataclass
class BenchContext:
    """Options every case reads. ``quick`` shrinks every case to a smoke-test size (seconds, not minutes)."""

    quick: bool = False
    repeats: int | None = None
    out_dir: Path = Path("bench")
    data_dir: str | None = None
    seed: int = 0
    log: Callable[[str], None] = print

    def reps(self, full: int, quick: int = 2) -> int:
        """Repeats for a case: the user's override, else the case's own full/quick default."""
        n = self.repeats if self.repeats is not None else (quick if self.quick else full)
        if n < 1:
            raise BenchError(f"repeats={n}: need at least 1 (use --repeats N with N >= 1)")
        return n


def idea3_episodes(ctx: BenchContext, episodes: int) -> tuple[list[Any], list[int]]:
    """E two-agent Idea3 MATH-500 envs (mode drawn with p = 0.5) and one seed per episode: the workload the
    rollout cases share, so their figures are about the same episodes."""
    import ilr_env

    questions = ilr_env.load_questions("math500", data_dir=ctx.data_dir)
    envs = [
        ilr_env.make("math500", num_agents=2, protocol="idea3", mode=0.5, questions=questions)
        for _ in range(episodes)
    ]
    return envs, [ctx.seed + e for e in range(episodes)]


@dataclass
class CaseResult:
    """One case's figures, ready for results.json and one row of the report table."""

    case: str
    title: str
    unit: str
    ratio_meaning: str
    target_op: TargetOp
    target: float
    status: Status = "ok"
    ours: Stat | None = None
    reference: Stat | None = None
    ratio: Stat | None = None
    met: bool | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def judge(self) -> None:
        """Set ``met`` from the median ratio (None when the case did not produce one)."""
        if self.ratio is None or not math.isfinite(self.ratio.median):
            self.met = None
            return
        r, t = self.ratio.median, self.target
        self.met = {">=": r >= t, "<=": r <= t, "<": r < t}[self.target_op]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interleave(arms: dict[str, Callable[[], Measurement]], repeats: int) -> dict[str, list[Measurement]]:
    """Run the arms A, B, A, B, ... ``repeats`` times each; every arm's run follows the others' closely."""
    out: dict[str, list[Measurement]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, fn in arms.items():
            out[name].append(fn())
    return out


def timed(fn: Callable[[], float]) -> Measurement:
    """Time ``fn()``, which does the work and returns how many units it did."""
    start = time.perf_counter()
    units = fn()
    return Measurement(time.perf_counter() - start, float(units))


def rate_ratio(
    result: CaseResult, runs: dict[str, list[Measurement]], ours: str, reference: str
) -> dict[str, Any]:
    """Fill ``result``'s two rates and their per-repeat ratio from two interleaved arms; returns the raw
    units and seconds of every arm for ``result.details``."""
    rate_o, rate_r = [m.rate for m in runs[ours]], [m.rate for m in runs[reference]]
    result.ours, result.reference = Stat.of(rate_o), Stat.of(rate_r)
    result.ratio = Stat.of(ratios(rate_o, rate_r))
    return {
        "tokens": {k: [m.units for m in v] for k, v in runs.items()},
        "seconds": {k: [m.seconds for m in v] for k, v in runs.items()},
    }


def ratios(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """Per-repeat ratios (pairs taken in order, so neighbouring runs are compared)."""
    return [a / b if b else math.inf for a, b in zip(num, den, strict=True)]


def profile_top(fn: Callable[[], Any], limit: int = 12, sort: str = "cumulative") -> list[str]:
    """cProfile ``fn()`` once and return the top ``limit`` rows (calls, own s, cumulative s, function)."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    return format_profile(pstats.Stats(prof), limit, sort)


def format_profile(stats: pstats.Stats, limit: int = 12, sort: str = "cumulative") -> list[str]:
    """Compact rows from a pstats object, skipping the profiler's own wrapper frames."""
    stats.sort_stats(sort)
    rows: list[str] = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for func in stats.fcn_list or []:  # type: ignore[attr-defined]
        _cc, ncalls, tottime, cumtime, _callers = raw[func]
        filename, line, name = func
        if name in ("<module>", "<listcomp>") and filename == "<string>":
            continue
        where = f"{_short_path(filename)}:{line}({name})" if line else name
        rows.append(f"{ncalls:>7} calls  own {tottime:8.3f}s  cum {cumtime:8.3f}s  {where}")
        if len(rows) >= limit:
            break
    return rows


def profile_text(text: str, limit: int = 12) -> list[str]:
    """Top rows of a ``python -m cProfile -s cumtime`` printout (a profile taken in another process)."""
    rows = [ln.rstrip() for ln in io.StringIO(text) if ln.strip() and ln.strip()[0].isdigit()]
    return rows[:limit]


_REPO = str(Path(__file__).resolve().parents[2]) + "/"


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", _REPO):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
