"""`ilr bench`: run the performance benchmark suite and write bench/results.json and bench/report.md.

Every case compares our code with a reference side by side in one process (interleaved repeats), so the
figures that matter are ratios, not absolute speeds. A case that cannot run here (no GPU) is recorded as
skipped with the command to run it; a case that crashes is recorded as an error and the rest still run.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from pathlib import Path

from experiments.benchmarks import CASES
from experiments.benchmarks.common import BenchContext, BenchError, CaseResult
from experiments.benchmarks.report import write


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="bench", help="folder for results.json and report.md (default: bench)"
    )
    parser.add_argument(
        "--cases", default="all", help=f"comma-separated cases to run (default: all = {','.join(CASES)})"
    )
    parser.add_argument(
        "--only", metavar="CASE", default=None, help="run this one case (same as --cases CASE)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke-test sizes (seconds per case); figures are not meaningful"
    )
    parser.add_argument("--repeats", type=int, default=None, help="override every case's number of repeats")
    parser.add_argument("--data-dir", default=None, help="benchmark data folder (default: $ILR_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every sampled generation")


def select_cases(spec: str) -> list[str]:
    if spec == "all":
        return list(CASES)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown or not names:
        raise BenchError(f"unknown case(s) {unknown or spec!r}; choose from {', '.join(CASES)} or 'all'")
    return names


def run_case(name: str, ctx: BenchContext) -> CaseResult:
    """One case, timed; an exception becomes an error row instead of ending the suite."""
    module = importlib.import_module(CASES[name])
    start = time.perf_counter()
    try:
        result: CaseResult = module.run(ctx)
    except Exception as exc:  # noqa: BLE001
        result = CaseResult(name, getattr(module, "TITLE", name), "", "", ">=", 0.0, status="error")
        result.notes.append(f"{type(exc).__name__}: {exc}")
        result.details["traceback"] = traceback.format_exc()[-4000:]
    result.seconds = time.perf_counter() - start
    return result


def run(args: argparse.Namespace) -> int:
    names = select_cases(args.only or args.cases)
    if args.repeats is not None and args.repeats < 1:
        raise BenchError(
            f"--repeats {args.repeats}: give at least 1 (or leave it out for each case's own count)"
        )
    ctx = BenchContext(
        quick=args.quick,
        repeats=args.repeats,
        out_dir=Path(args.out),
        data_dir=args.data_dir,
        seed=args.seed,
        log=lambda msg: print(msg, flush=True),
    )
    results: list[CaseResult] = []
    start = time.perf_counter()
    for name in names:
        ctx.log(f"[bench] {name} ...")
        result = run_case(name, ctx)
        results.append(result)
        ratio = f"ratio {result.ratio.median:.3g}" if result.ratio else result.status
        ctx.log(
            f"[bench] {name}: {ratio} ({result.seconds:.0f} s)"
            + (f" — {result.notes[0]}" if result.status == "error" else "")
        )
        write(
            results, ctx.out_dir, quick=ctx.quick, wall_s=time.perf_counter() - start
        )  # partial results survive
    json_path, md_path = write(results, ctx.out_dir, quick=ctx.quick, wall_s=time.perf_counter() - start)
    ctx.log(f"[bench] wrote {json_path} and {md_path}")
    return 1 if any(r.status == "error" for r in results) else 0
