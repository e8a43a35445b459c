"""Smoke test of `ilr bench --quick`: every case runs at a minimal size and the report files hold its fields.

Timings are never asserted (machines are noisy); only that the figures exist and are finite, that the
verdict checks hold (identical maths verdicts, every canonical HumanEval solution passing) and that the
GPU case explains itself when it cannot run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from experiments.benchmarks import CASES
from experiments.benchmarks.common import BenchError, CaseResult, Stat
from experiments.commands import bench

LIGHT = ["math_grading", "code_sandbox", "gpu_vllm"]
HEAVY = ["env_overhead", "batched_rollouts", "training_overhead", "training_overhead_lora"]


def _run(tmp_path: Path, cases: list[str]) -> dict:
    args = bench.argparse.ArgumentParser()
    bench.add_arguments(args)
    code = bench.run(args.parse_args(["--quick", "--out", str(tmp_path), "--cases", ",".join(cases)]))
    results = json.loads((tmp_path / "results.json").read_text())
    assert code == 0, [c["notes"] for c in results["cases"] if c["status"] == "error"]
    return results


def _check_case(case: dict) -> None:
    if case["status"] == "skipped":
        assert case["notes"] and "skipped" in case["notes"][0]
        return
    assert case["status"] == "ok", case["notes"]
    for key in ("ours", "reference", "ratio"):
        stat = case[key]
        for field in ("median", "q1", "q3", "min", "max"):
            assert isinstance(stat[field], float) and math.isfinite(stat[field]), (case["case"], key, field)
        assert stat["min"] <= stat["median"] <= stat["max"]
    assert case["met"] in (True, False)


def _check_files(tmp_path: Path, results: dict, cases: list[str]) -> None:
    assert results["quick"] is True
    assert {"cpu", "cores_usable", "ram_gib"} <= set(results["machine"])
    for name in ("python", "torch", "transformers", "trl", "math-verify"):
        assert name in results["versions"]
    assert [c["case"] for c in results["cases"]] == cases
    report = (tmp_path / "report.md").read_text()
    assert "| case | ours | reference | ratio | target | met? |" in report
    for case in results["cases"]:
        assert case["title"] in report
        _check_case(case)


def test_light_cases_write_report(tmp_path: Path) -> None:
    results = _run(tmp_path, LIGHT)
    _check_files(tmp_path, results, LIGHT)
    by_name = {c["case"]: c for c in results["cases"]}
    assert by_name["math_grading"]["details"]["disagreements"] == 0
    sandbox = by_name["code_sandbox"]["details"]
    assert sandbox["passed_ours"] == sandbox["passed_reference"] == sandbox["programs"]
    gpu = by_name["gpu_vllm"]
    if gpu["status"] == "skipped":
        assert "ilr bench --only gpu_vllm" in gpu["details"]["command"]


@pytest.mark.slow
def test_model_cases_write_report(tmp_path: Path) -> None:
    results = _run(tmp_path, HEAVY)
    _check_files(tmp_path, results, HEAVY)
    by_name = {c["case"]: c for c in results["cases"]}
    tokens = by_name["batched_rollouts"]["details"]
    assert tokens["tokens_batched"] == tokens["tokens_loop"]  # forced equal token counts
    for name in ("training_overhead", "training_overhead_lora"):
        details = by_name[name]["details"]
        assert details["memory"]["ilr_2_agents_peak_rss_mib"]["median"] > 0
        # the fusion prompt carries the discussion: more tokens through each agent's loss than GRPO's
        assert details["loss_tokens"]["ilr_per_agent_step"] > details["loss_tokens"]["grpo_per_step"] > 0
    assert by_name["training_overhead_lora"]["details"]["lora"] is True


def test_case_list_and_errors() -> None:
    assert bench.select_cases("all") == list(CASES)
    assert bench.select_cases("math_grading, code_sandbox") == ["math_grading", "code_sandbox"]
    with pytest.raises(BenchError, match="unknown case"):
        bench.select_cases("maths_grading")


def test_target_judgement() -> None:
    result = CaseResult("x", "X", "u", "ratio", "<=", 1.15)
    result.ratio = Stat.of([1.0, 1.1, 1.2])
    result.judge()
    assert result.met is True
    result.ratio = Stat.of([float("inf")])
    result.judge()
    assert result.met is None
    stat = Stat.of([3.0, 1.0, 2.0, 10.0])
    assert (stat.median, stat.min, stat.max) == (2.5, 1.0, 10.0)
    assert stat.q1 <= stat.median <= stat.q3
