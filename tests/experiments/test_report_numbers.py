"""The report's numbers on hand-made results: which model each paired-test count belongs to, how AIME's
two years make one column, and how tokens are counted. No training: every input is written here, so a
swapped pair or a wrong count shows as a wrong number, not as a changed shape."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from experiments.reports.report import (
    markdown,
    paired_tests,
    summary_rows,
    table1,
    table1_markdown,
    training_compute,
)
from ilr_agents.stats import bootstrap_average_ci, bootstrap_ci, mcnemar_exact

ILR, GRPO = "ilr agent_0", "grpo agent_0"
# ILR alone right on questions 0-4, GRPO alone right on question 5, both right on 6-7, both wrong on 8-9
ILR_RIGHT = [True] * 5 + [False] + [True] * 2 + [False] * 2
GRPO_RIGHT = [False] * 5 + [True] + [True] * 2 + [False] * 2


def _seed(correct, **extra):
    return {"correct": list(correct), "length": [10.0] * len(correct), **extra}


def test_paired_test_credits_each_model_its_own_wins():
    results = {"evaluations": {"gsm8k:test": {ILR: [_seed(ILR_RIGHT)], GRPO: [_seed(GRPO_RIGHT)]}}}
    (row,) = paired_tests(results, [(ILR, GRPO)], metrics=("correct",))
    assert (row["a"], row["b"]) == (ILR, GRPO)
    assert (row["only_a"], row["only_b"]) == (5, 1)
    assert row["p_value"] == pytest.approx(mcnemar_exact(ILR_RIGHT, GRPO_RIGHT)["p_value"])
    assert {k: row[k] for k in ("benchmark", "seed_index", "metric")} == {
        "benchmark": "gsm8k:test",
        "seed_index": 0,
        "metric": "correct",
    }
    (flipped,) = paired_tests(results, [(GRPO, ILR)], metrics=("correct",))
    assert (flipped["a"], flipped["only_a"], flipped["b"], flipped["only_b"]) == (GRPO, 1, ILR, 5)


def test_paired_tests_pair_seed_k_with_seed_k_per_metric_and_skip_what_is_missing():
    ilr = [_seed(ILR_RIGHT, strict=[True] * 10), _seed(GRPO_RIGHT)]
    grpo = [_seed(GRPO_RIGHT, strict=[False] * 10), _seed(ILR_RIGHT)]
    results = {
        "evaluations": {
            "gsm8k:test": {ILR: ilr, GRPO: grpo},
            "math500:test": {ILR: [_seed(ILR_RIGHT)]},  # GRPO not evaluated here: no test
        }
    }
    rows = paired_tests(results, [(ILR, GRPO), (ILR, "missing")])
    got = [(r["benchmark"], r["seed_index"], r["metric"], r["only_a"], r["only_b"]) for r in rows]
    assert got == [
        ("gsm8k:test", 0, "strict", 10, 0),  # only seed 0 logged "strict"
        ("gsm8k:test", 0, "correct", 5, 1),
        ("gsm8k:test", 1, "correct", 1, 5),
    ]
    assert markdown({"name": "n"}, [], rows).count("| gsm8k:test | ilr agent_0 | grpo agent_0 |") == 3
    assert "| correct (stated answer) | 1 | 5 | " in markdown({"name": "n"}, [], rows)


def test_summary_rows_give_each_metric_its_own_mean_and_interval():
    seeds = [
        _seed([True, False, False, False], strict=[False] * 4, length=[4.0, 6.0, 8.0, 10.0]),
        _seed([True, True, False, False], strict=[True, False, False, False], length=[2.0] * 4),
    ]
    (row,) = summary_rows({"evaluations": {"gsm8k:test": {ILR: seeds}}})
    assert {k: row[k] for k in ("benchmark", "label", "seeds", "questions")} == {
        "benchmark": "gsm8k:test",
        "label": ILR,
        "seeds": 2,
        "questions": 4,
    }
    correct = np.array([s["correct"] for s in seeds], dtype=float)
    strict = np.array([s["strict"] for s in seeds], dtype=float)
    assert row["correct"] == {"mean": 0.375, "ci95": list(bootstrap_ci(correct)[1:])}
    assert row["strict"] == {"mean": 0.125, "ci95": list(bootstrap_ci(strict)[1:])}
    # metrics a run did not log fall back to "correct"
    assert row["lenient"] == row["boxed"] == row["correct"]
    assert row["mean_length"] == pytest.approx(4.5)


def test_table1_concatenates_the_aime_years_and_averages_the_columns():
    evaluations = {
        "math500:test": {ILR: [_seed([True, True, False, False])], GRPO: [_seed([True] * 4)]},
        "aime24:test": {ILR: [_seed([True, False])], GRPO: [_seed([False, False])]},
        "aime25:test": {ILR: [_seed([True, True, True])], GRPO: [_seed([False, True, False])]},
        "gsm8k:test": {ILR: [_seed([False])], GRPO: [_seed([True])], "other": [_seed([True])]},
        "rg/basic_arithmetic:test": {ILR: [_seed([True])]},
    }
    table = table1({"evaluations": evaluations})
    assert table["columns"] == ["gsm8k", "math500", "aime"]
    assert table["aime_years"] == ["aime24", "aime25"]
    assert table["metric"] == "correct"
    rows = {r["label"]: r for r in table["rows"]}
    assert list(rows) == [ILR, GRPO]  # "other" lacks two columns
    ilr = rows[ILR]
    assert ilr["cells"]["aime"]["questions"] == 5
    assert ilr["cells"]["aime"]["mean"] == pytest.approx(4 / 5)
    assert ilr["cells"]["aime"]["ci95"] == list(bootstrap_ci(np.array([[1, 0, 1, 1, 1]], dtype=float))[1:])
    assert ilr["cells"]["math500"] == {
        "mean": 0.5,
        "ci95": list(bootstrap_ci(np.array([[1, 1, 0, 0]], dtype=float))[1:]),
        "questions": 4,
    }
    expected = bootstrap_average_ci(
        [np.array([[0.0]]), np.array([[1, 1, 0, 0.0]]), np.array([[1, 0, 1, 1, 1.0]])]
    )
    assert ilr["average"] == {"mean": pytest.approx((0 + 0.5 + 0.8) / 3), "ci95": list(expected[1:])}
    assert rows[GRPO]["cells"]["aime"]["mean"] == pytest.approx(1 / 5)


def test_table1_reads_the_metric_asked_for_and_falls_back_to_correct():
    evaluations = {
        "gsm8k:test": {ILR: [_seed([True, True], strict=[True, False])], GRPO: [_seed([True, False])]}
    }
    table = table1({"evaluations": evaluations}, metric="strict")
    means = {r["label"]: r["cells"]["gsm8k"]["mean"] for r in table["rows"]}
    assert means == {ILR: 0.5, GRPO: 0.5}
    assert table["aime_years"] == []


def test_table1_markdown_states_question_counts_and_a_partial_average():
    evaluations = {
        "gsm8k:test": {ILR: [_seed([True, False, False, False])]},
        "aime25:test": {ILR: [_seed([True])]},
    }
    lines = table1_markdown(table1({"evaluations": evaluations}))
    text = "\n".join(lines)
    assert "| model | GSM8K (4 q) | AIME 24+25 (1 q) | Avg (2 of 5 maths) |" in text
    assert f"| {ILR} | 25.0 [0.0, 75.0] | 100.0 [100.0, 100.0] | 62.5 [" in text
    assert "AIME 2025 are scored as one benchmark" in text
    assert "(the preset does not evaluate the others)" in text


def _write_run(tmp_path, config, summary, metrics):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "train_summary.json").write_text(json.dumps(summary))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return tmp_path


def _trl(agent, step, mean_length, clipped, terminated, num_tokens):
    return {
        "kind": "trl",
        "agent": agent,
        "step": step,
        "completions/mean_length": mean_length,
        "completions/clipped_ratio": clipped,
        "completions/mean_terminated_length": terminated,
        "num_tokens": num_tokens,
    }


def test_training_compute_counts_tokens_per_logged_step(tmp_path):
    metrics = [
        _trl("agent_0", 1, 10.0, 0.5, 8.0, 100.0),
        _trl("agent_1", 1, 20.0, 0.0, 20.0, 50.0),
        {"kind": "ilr", "agent": "agent_0", "step": 1, "discussion_tokens": 7},
        _trl("agent_0", 3, 12.0, 0.25, 4.0, 300.0),  # logged every 2 steps: counts twice
        {"kind": "other", "completions/mean_length": 1e9},
    ]
    config = {"grpo": {"per_device_train_batch_size": 4, "mask_truncated_completions": True}}
    run = _write_run(tmp_path, config, {"world_size": 2, "seconds": 12.5}, metrics)
    rows_per_step = 4 * 2
    generated = rows_per_step * (10.0 + 20.0 + 2 * 12.0) + 2 * 7
    loss = rows_per_step * (0.5 * 8.0 + 1.0 * 20.0 + 2 * 0.75 * 4.0)
    assert training_compute(run) == {
        "steps": 3,
        "world_size": 2,
        "generated_tokens": round(generated),
        "loss_tokens": round(loss),
        "forward_tokens": 350,  # each agent's last cumulative count
        "train_seconds": 12.5,
    }


def test_training_compute_without_masking_counts_every_answer_token(tmp_path):
    config = {"per_device_train_batch_size": 3}
    run = _write_run(tmp_path, config, {}, [_trl("agent_0", 2, 10.0, 0.5, 4.0, 9.0)])
    out = training_compute(run)
    assert out == {
        "steps": 2,
        "world_size": 1,
        "generated_tokens": 60,
        "loss_tokens": 60,
        "forward_tokens": 9,
        "train_seconds": None,
    }
    empty = training_compute(tmp_path / "missing")
    assert empty == {
        "steps": 0,
        "world_size": 1,
        "generated_tokens": 0,
        "loss_tokens": 0,
        "forward_tokens": 0,
        "train_seconds": None,
    }


def test_paired_tests_skip_unmatched_seeds_and_metrics_logged_by_one_side_only():
    ilr = [_seed(ILR_RIGHT, strict=ILR_RIGHT), _seed(ILR_RIGHT)]
    grpo = [_seed(GRPO_RIGHT)]  # one seed only, and no "strict"
    results = {"evaluations": {"gsm8k:test": {ILR: ilr, GRPO: grpo}}}
    rows = paired_tests(results, [(ILR, GRPO)])
    assert [(r["seed_index"], r["metric"]) for r in rows] == [(0, "correct")]


def test_table1_skips_other_benchmarks_wherever_they_come_and_reads_the_task_before_the_first_colon():
    evaluations = {
        "rg/basic_arithmetic:test": {ILR: [_seed([True])]},
        "gsm8k:test:rerun": {ILR: [_seed([True, False])]},
    }
    table = table1({"evaluations": evaluations})
    assert table["columns"] == ["gsm8k"]
    assert table["rows"][0]["cells"]["gsm8k"]["mean"] == 0.5


def test_table1_markdown_full_layout_line_by_line():
    table = table1(
        {
            "evaluations": {
                **{f"{t}:test": {ILR: [_seed([True, False])]} for t in ("gsm8k", "math500", "minerva_math")},
                "olympiadbench:test": {ILR: [_seed([True, False])]},
                "aime24:test": {ILR: [_seed([True])]},
                "aime25:test": {ILR: [_seed([True])]},
            }
        }
    )
    row = table["rows"][0]
    avg_lo, avg_hi = (100 * v for v in row["average"]["ci95"])
    assert table1_markdown(table) == [
        "## Table 1 layout: accuracy %, correct (stated answer)",
        "",
        (
            "| model | GSM8K (2 q) | MATH-500 (2 q) | Minerva (2 q) | OlympiadBench (2 q) | AIME 24+25 (2 q) "
            "| Avg (5 maths) |"
        ),
        "|---|---|---|---|---|---|---|",
        f"| {ILR} | "
        + " | ".join(["50.0 [0.0, 100.0]"] * 4)
        + f" | 100.0 [100.0, 100.0] | 60.0 [{avg_lo:.1f}, {avg_hi:.1f}] |",
        "",
        (
            "AIME 2024 and 25 are scored as one benchmark (their questions concatenated), as in the paper. "
            "Avg (5 maths) is the unweighted mean of the columns shown. Intervals: 95% percentile bootstrap "
            "over questions (and seeds); the average's interval resamples each benchmark's questions "
            "independently, so every benchmark keeps its weight of one."
        ),
        "",
    ]


def test_table1_markdown_without_rows_or_aime():
    table = {"metric": "strict", "columns": ["gsm8k", "math500"], "aime_years": [], "rows": []}
    assert table1_markdown(table) == [
        "## Table 1 layout: accuracy %, boxed and correct",
        "",
        "| model | GSM8K (? q) | MATH-500 (? q) | Avg (2 of 5 maths) |",
        "|---|---|---|---|",
        "",
        (
            "Avg (2 of 5 maths) is the unweighted mean of the columns shown (the preset does not evaluate "
            "the others). Intervals: 95% percentile bootstrap over questions (and seeds); the average's "
            "interval resamples each benchmark's questions independently, so every benchmark keeps its "
            "weight of one."
        ),
        "",
    ]


def test_training_compute_tolerates_rows_without_optional_counts(tmp_path):
    trl = _trl("agent_0", 1, 10.0, 0.0, 10.0, 0.0)
    del trl["num_tokens"]
    metrics = [trl, {"kind": "ilr", "agent": "agent_0", "step": 1}]
    run = _write_run(tmp_path, {"per_device_train_batch_size": 2}, {}, metrics)
    assert training_compute(run)["generated_tokens"] == 20
    assert training_compute(run)["forward_tokens"] == 0
    # no batch size recorded: no rows per step are assumed
    run2 = _write_run(tmp_path / "b", {}, {}, [_trl("agent_0", 1, 10.0, 0.0, 10.0, 5.0)])
    assert training_compute(run2)["generated_tokens"] == 0
