"""The compare report in the paper's Table 1 layout (5-maths average, AIME 24+25 as one benchmark) and the
tokens and compute each method spent, on a CPU run of tiny models."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.reports.report import read_jsonl, table1
from ilr_agents.stats import bootstrap_average_ci

MATHS = ["gsm8k", "math500", "minerva_math", "olympiadbench", "aime24", "aime25"]


@pytest.fixture(scope="module")
def maths_run(tmp_path_factory):
    pytest.importorskip("trl")
    from experiments.commands.compare import CompareConfig, run_comparison

    evaluate = [{"task": t, "split": "test", "limit": 1} for t in MATHS]
    config = CompareConfig.from_yaml(
        "tiny-smoke",
        {"output_root": str(tmp_path_factory.mktemp("runs")), "evaluate": evaluate, "evaluate_base": False},
    )
    # every answer reaches the loss, so the loss-token count can be checked against the rollout's own count
    grpo = {**config.train.get("grpo", {}), "mask_truncated_completions": False}
    config = dataclasses.replace(config, train={**config.train, "grpo": grpo})
    report = run_comparison(config)
    return json.loads((report.parent / "results.json").read_text()), report.read_text()


def test_report_shows_table1_average_and_aime_as_one_benchmark(maths_run):
    results, text = maths_run
    table = results["table1"]
    assert table["columns"] == ["gsm8k", "math500", "minerva_math", "olympiadbench", "aime"]
    assert {r["label"] for r in table["rows"]} == {
        "grpo agent_0",
        "grpo agent_1",
        "ilr agent_0",
        "ilr agent_1",
    }
    for row in table["rows"]:
        assert row["cells"]["aime"]["questions"] == 2  # 1 from 2024 + 1 from 2025, one benchmark
        means = [row["cells"][c]["mean"] for c in table["columns"]]
        assert row["average"]["mean"] == pytest.approx(np.mean(means))
        lo, hi = row["average"]["ci95"]
        assert lo <= row["average"]["mean"] <= hi
    assert (
        "| model | GSM8K (1 q) | MATH-500 (1 q) | Minerva (1 q) | OlympiadBench (1 q) | AIME 24+25 (2 q) |"
    ) in text
    assert "Avg (5 maths)" in text and "AIME 2024 and 25 are scored as one benchmark" in text


def test_report_shows_tokens_and_compute_per_method(maths_run):
    results, text = maths_run
    compute = results["compute"]
    assert set(compute) == {"grpo seed 0", "ilr seed 0"}
    for c in compute.values():
        assert c["steps"] == 2 and c["train_seconds"] > 0
        assert c["loss_tokens"] > 0 and c["forward_tokens"] > c["loss_tokens"]
    # TRL's logged lengths (what the report reads) agree with the joint rollout's own token counts
    rows = read_jsonl(Path(results["training_logs"]["ilr seed 0"]))
    ilr_rows = [r for r in rows if r.get("kind") == "ilr"]
    answers = sum(r["completion_tokens"] for r in ilr_rows)
    discussion = sum(r["discussion_tokens"] for r in ilr_rows)
    assert discussion > 0
    assert compute["ilr seed 0"]["generated_tokens"] == answers + discussion
    assert compute["ilr seed 0"]["loss_tokens"] == answers
    assert "## Tokens and compute per method" in text and "**not in compute**" in text
    assert "| ilr seed 0 | 2 |" in text


def test_table1_is_absent_without_maths_benchmarks():
    results = {"evaluations": {"rg/basic_arithmetic:test": {"m": [{"correct": [True, False]}]}}}
    assert table1(results) is None


def test_aime_years_with_different_seed_counts_are_refused():
    results = {
        "evaluations": {
            "aime24:test": {"m": [{"correct": [True]}, {"correct": [False]}]},
            "aime25:test": {"m": [{"correct": [True]}]},
        }
    }
    with pytest.raises(ValueError, match="different numbers of seeds"):
        table1(results)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.booleans(), min_size=1, max_size=30), min_size=1, max_size=5),
    st.integers(0, 2**16),
)
def test_average_interval_brackets_the_mean_of_means(groups, seed):
    mean, lo, hi = bootstrap_average_ci(groups, resamples=200, seed=seed)
    assert mean == pytest.approx(np.mean([np.mean(g) for g in groups]))
    assert 0.0 <= lo <= hi <= 1.0
    # a benchmark's weight does not depend on its size: duplicating one group's questions changes nothing
    doubled = [groups[0] * 2, *groups[1:]]
    assert bootstrap_average_ci(doubled, resamples=200, seed=seed)[0] == pytest.approx(mean)
