"""`make mutation`: mutmut over the modules that decide a number, one module at a time, within a time budget.

Each module runs in its own scratch folder (``runs/mutation/<key>``) with a generated ``[tool.mutmut]`` that
mutates only that file and selects only the tests that cover it, so a module's mutants never wait on the
whole suite, and one child process keeps a shared 2-core machine usable. A per-module wall-clock cap stops a
slow module; its unrun mutants are reported as "not checked" rather than silently dropped.

The score per module goes to ``docs/mutation/report.{json,md}``. A surviving mutant counts as explained
when ``docs/mutation/equivalent.toml`` gives a one-line reason why it cannot change behaviour; every other
survivor is listed as needing a test.

    python experiments/scripts/mutation.py                    # every module, then the report
    python experiments/scripts/mutation.py stats calibration  # some modules
    python experiments/scripts/mutation.py --report-only      # rebuild the report from the scratch folders
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRATCH = ROOT / "runs" / "mutation"
DOCS = ROOT / "docs" / "mutation"
PACKAGES = ("ilr_env", "ilr_agents", "baselines", "experiments")
TARGET = 0.90


@dataclass(frozen=True)
class Module:
    """One file to mutate, the tests that cover it, and how long it may take on 2 cores."""

    path: str
    tests: tuple[str, ...]
    cap_s: int
    # mutant-name globs to run (default: every function in the file); report.py's plotting is not a number
    only: tuple[str, ...] = field(default_factory=tuple)
    # settled modules first; the others are being rewritten in other branches (re-run after merge)
    settled: bool = True


MODULES: dict[str, Module] = {
    "stats": Module(
        "ilr_agents/stats.py", ("tests/agents/test_stats.py", "tests/agents/test_stats_levels.py"), 600
    ),
    "calibration": Module(
        "ilr_agents/calibration.py",
        ("tests/agents/test_calibration.py", "tests/agents/test_calibration_numbers.py"),
        900,
    ),
    "report": Module(
        "experiments/reports/report.py",
        (
            "tests/experiments/test_report_numbers.py",
            "tests/experiments/test_report.py::test_table1_is_absent_without_maths_benchmarks",
            "tests/experiments/test_report.py::test_aime_years_with_different_seed_counts_are_refused",
        ),
        900,
        only=(
            "experiments.reports.report.x_summary_rows*",
            "experiments.reports.report.x__task*",
            "experiments.reports.report.x_table1*",
            "experiments.reports.report.x_paired_tests*",
            "experiments.reports.report.x_training_compute*",
            "experiments.reports.report.x__cell*",
        ),
    ),
    "checkpoint": Module(
        "ilr_agents/checkpoint.py",
        ("tests/agents/test_checkpoint_selection.py",),
        900,
    ),
    "difficulty": Module(
        "ilr_env/difficulty.py",
        (
            "tests/env/test_difficulty.py",
            "tests/env/test_difficulty_numbers.py",
            "tests/env/test_difficulty_exact.py",
            "tests/agents/test_self_rank.py",
            # 20 s of CLI start-up per mutant; the same ranking code is covered by the tests above
            "--deselect=tests/agents/test_self_rank.py::test_ilr_difficulty_command_with_two_zoo_models",
        ),
        1200,
    ),
    "choice": Module(
        "ilr_env/grading/choice.py",
        ("tests/env/test_grading.py", "tests/env/test_grading_format.py", "tests/env/test_choice_rewards.py"),
        600,
        settled=False,
    ),
    "extract": Module(
        "ilr_env/grading/extract.py",
        (
            "tests/env/test_grading.py",
            "tests/env/test_grading_format.py",
            "tests/env/test_long_replies.py",
            "tests/env/test_extract_sources.py",
            "tests/env/test_choice_rewards.py",
        ),
        900,
        settled=False,
    ),
    "maths": Module(
        "ilr_env/grading/maths.py",
        ("tests/env/test_grading.py", "tests/env/test_grading_format.py", "tests/env/test_grading_gold.py"),
        1800,  # about 0.3 mutants/s: its tests grade through math-verify workers
        settled=False,
    ),
    "rewards": Module(
        "ilr_agents/rewards.py",
        ("tests/agents/test_reward_model.py", "tests/env/test_long_replies.py"),
        900,
        settled=False,
    ),
    # the code judge's verdict (tests run, pass/fail, pass@k); the isolation layers are security, not numbers
    "code_judge": Module(
        "ilr_env/grading/sandbox.py",
        ("tests/env/test_grading.py", "tests/security/test_sandbox_fallback.py"),
        1200,
        only=tuple(
            f"ilr_env.grading.sandbox.x_{f}*"
            for f in (
                "run_tests",
                "judge_once",
                "extract_code",
                "build_program",
                "check_code",
                "check_many",
                "pass_at_k",
            )
        ),
        settled=False,
    ),
}


def _toml_value(value: object) -> str:
    # JSON strings, numbers, booleans and lists of them are valid TOML
    return json.dumps(value)


def _mutmut_section(module: Module) -> str:
    common = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}).get("mutmut", {})
    settings = {
        **common,
        "source_paths": list(PACKAGES),
        "only_mutate": [module.path],
        "pytest_add_cli_args_test_selection": list(module.tests),
    }
    return "[tool.mutmut]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in settings.items())


def _pyproject_for(module: Module) -> str:
    """The repository's pyproject with its [tool.mutmut] table replaced by this module's."""
    out, skipping = [], False
    for line in (ROOT / "pyproject.toml").read_text().splitlines(keepends=True):
        if line.startswith("["):
            skipping = line.strip() == "[tool.mutmut]"
        if not skipping:
            out.append(line)
    return "".join(out).rstrip("\n") + "\n\n" + _mutmut_section(module)


def prepare(key: str, module: Module) -> Path:
    """A fresh scratch folder: mutmut caches which tests cover which function, so a kept folder would
    never run a test written since, and its mutated copies would be of old sources."""
    work = SCRATCH / key
    if work.exists():
        shutil.rmtree(work)
    # made before mutmut starts: a PYTHONPATH entry missing at start-up is cached as "no modules here"
    (work / "mutants").mkdir(parents=True)
    for name in (*PACKAGES, "tests"):
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    (work / "pyproject.toml").write_text(_pyproject_for(module))
    return work


def run_module(key: str, module: Module, cap_s: int) -> dict[str, object]:
    """Run mutmut for one module under its cap; killing the process group stops its forked workers too."""
    work = prepare(key, module)
    env = {
        **os.environ,
        "ILR_DATA_DIR": os.environ.get("ILR_DATA_DIR", str(ROOT.parent / "shared" / "data")),
        # subprocesses the tests start (sandbox workers) import the mutated copy, not the installed one
        "PYTHONPATH": str(work / "mutants"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *module.only]
    start = time.monotonic()
    with open(work / "mutmut.log", "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=cap_s)
            capped = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            capped = True
    return {"returncode": rc, "capped": capped, "seconds": round(time.monotonic() - start, 1)}


def read_results(key: str, module: Module) -> dict[str, str]:
    """mutant name -> mutmut's status word, from the .meta file mutmut keeps beside the mutated copy."""
    from fnmatch import fnmatch

    from mutmut.stats import status_by_exit_code

    meta = SCRATCH / key / "mutants" / (module.path + ".meta")
    if not meta.is_file():
        return {}
    codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
    names = {n: c for n, c in codes.items() if not module.only or any(fnmatch(n, g) for g in module.only)}
    return {name: status_by_exit_code[code] for name, code in sorted(names.items())}


KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def score(statuses: dict[str, str], reasons: dict[str, str]) -> dict[str, object]:
    """Killed over the mutants that could be killed: an explained (equivalent) survivor leaves the
    denominator; an unexplained survivor, a mutant no test reaches, and one not run all count against."""
    killed = sorted(n for n, s in statuses.items() if s in KILLED)
    equivalent = sorted(n for n, s in statuses.items() if s == "survived" and n in reasons)
    open_ = sorted(n for n, s in statuses.items() if s not in KILLED and n not in equivalent)
    denominator = len(statuses) - len(equivalent)
    return {
        "mutants": len(statuses),
        "killed": len(killed),
        "equivalent": len(equivalent),
        "survived": sum(1 for n in open_ if statuses[n] == "survived"),
        "no_tests": sum(1 for n in open_ if statuses[n] == "no tests"),
        "not_checked": sum(1 for n in open_ if statuses[n] == "not checked"),
        "score": round(len(killed) / denominator, 4) if denominator else None,
        "open": {n: statuses[n] for n in open_},
        "explained": {n: reasons[n] for n in equivalent},
    }


def load_reasons() -> dict[str, str]:
    path = DOCS / "equivalent.toml"
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text())
    return {name: reason for table in data.values() for name, reason in table.items()}


def write_report(rows: dict[str, dict[str, object]]) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "report.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Mutation testing report",
        "",
        (
            "Written by `make mutation` (experiments/scripts/mutation.py, mutmut 3.8). Score = killed /"
            " (mutants - survivors explained as equivalent in equivalent.toml); unexplained survivors,"
            " mutants no test reaches and mutants the time cap left unrun count against it."
            f" Target: >= {TARGET:.0%} per module."
        ),
        "",
        "| module | file | mutants | killed | equivalent | survived | no tests | not run | score | run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in rows.items():
        s = row["score"]
        shown = "-" if s is None else f"{100 * s:.1f}%" + ("" if s >= TARGET else " (below target)")
        run = f"{row.get('seconds', '?')} s" + (", capped" if row.get("capped") else "")
        if not row["settled"]:
            run += ", re-run after merge"
        lines.append(
            f"| {key} | `{row['path']}` | {row['mutants']} | {row['killed']} | {row['equivalent']} | "
            f"{row['survived']} | {row['no_tests']} | {row['not_checked']} | {shown} | {run} |"
        )
    for key, row in rows.items():
        if row["open"]:
            lines += ["", f"## {key}: mutants still open (need a test or a reason)", ""]
            lines += [f"- `{n}`: {status}" for n, status in row["open"].items()]
    (DOCS / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to run (default all): {', '.join(MODULES)}")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report from past runs")
    parser.add_argument("--max-cap", type=int, default=None, help="lower every module's time cap to this (s)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {sorted(MODULES)}")
    chosen = args.modules or list(MODULES)
    previous = json.loads((DOCS / "report.json").read_text()) if (DOCS / "report.json").is_file() else {}
    reasons = load_reasons()
    rows: dict[str, dict[str, object]] = {}
    for key, module in MODULES.items():
        run_info = previous.get(key, {})
        if key in chosen and not args.report_only:
            cap = min(module.cap_s, args.max_cap or module.cap_s)
            print(f"mutation: {key} ({module.path}), cap {cap} s", flush=True)
            run_info = run_module(key, module, cap)
        statuses = read_results(key, module)
        if not statuses and key not in previous:
            continue
        row = score(statuses, reasons) if statuses else {k: v for k, v in previous[key].items()}
        row |= {"path": module.path, "settled": module.settled}
        row |= {k: run_info[k] for k in ("seconds", "capped") if k in run_info}
        rows[key] = row
        print(f"mutation: {key}: score {row['score']} ({row['killed']}/{row['mutants']} killed)", flush=True)
    write_report(rows)
    below = [k for k, r in rows.items() if r["score"] is None or r["score"] < TARGET]
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
