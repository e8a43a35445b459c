"""Turn a comparison's results.json and training logs into what people read: report.md and PNG plots.

Kept separate from the runner so a report can be rebuilt from files (``ilr compare --report-only``) without
retraining, and so the numbers in README come from the same code as the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ilr_agents.stats import bootstrap_average_ci, bootstrap_ci, mcnemar_exact

METRICS = {
    "strict": "boxed and correct",
    "correct": "correct (stated answer)",
    "lenient": "lenient (or last number)",
    "boxed": "boxed rate",
}


# The paper's Table 1: five maths benchmarks and their plain average; AIME 2024 and 2025 are one column.
TABLE1_COLUMNS = {
    "gsm8k": "GSM8K",
    "math500": "MATH-500",
    "minerva_math": "Minerva",
    "olympiadbench": "OlympiadBench",
    "aime": "AIME 24+25",
}
AIME_PARTS = ("aime24", "aime25")
TABLE1_METRIC = "correct"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (benchmark, evaluated model): metric means with 95% bootstrap intervals.

    ``results["evaluations"]`` holds, per benchmark and label, a list over seeds of per-question outcome
    lists; intervals resample questions and, when there are several seeds, seeds too.
    """
    rows = []
    for bench, by_label in results["evaluations"].items():
        for label, seeds in by_label.items():
            row: dict[str, Any] = {
                "benchmark": bench,
                "label": label,
                "seeds": len(seeds),
                "questions": len(seeds[0]["correct"]),
            }
            for key in METRICS:
                arr = np.array([s.get(key, s["correct"]) for s in seeds], dtype=float)
                mean, lo, hi = bootstrap_ci(arr)
                row[key] = {"mean": mean, "ci95": [lo, hi]}
            row["mean_length"] = float(np.mean([np.mean(s["length"]) for s in seeds]))
            rows.append(row)
    return rows


def _task(bench_label: str) -> str:
    return bench_label.split(":", 1)[0]


def table1(results: dict[str, Any], metric: str = TABLE1_METRIC) -> dict[str, Any] | None:
    """The paper's Table 1 rows for the models evaluated on its maths benchmarks, or None if none are there.

    AIME 2024 and 2025 outcomes are concatenated into one benchmark (60 questions when both are complete),
    as the paper reports them. ``average`` is the unweighted mean of the columns present (the paper's "Avg"
    when all five are), with a stratified bootstrap interval (``stats.bootstrap_average_ci``).
    """
    by_task: dict[str, dict[str, list[list[bool]]]] = {}
    for bench, by_label in results["evaluations"].items():
        task = _task(bench)
        column = "aime" if task in AIME_PARTS else task
        if column not in TABLE1_COLUMNS:
            continue
        target = by_task.setdefault(column, {})
        for label, seeds in by_label.items():
            outcomes = [list(s.get(metric, s["correct"])) for s in seeds]
            if label in target:  # the second AIME year: append its questions seed by seed
                if len(target[label]) != len(outcomes):
                    raise ValueError(f"{label}: AIME years were evaluated with different numbers of seeds")
                outcomes = [a + b for a, b in zip(target[label], outcomes, strict=True)]
            target[label] = outcomes
    if not by_task:
        return None
    columns = [c for c in TABLE1_COLUMNS if c in by_task]
    labels = [lab for lab in next(iter(by_task.values())) if all(lab in by_task[c] for c in columns)]
    rows = []
    for label in labels:
        cells = {}
        for c in columns:
            mean, lo, hi = bootstrap_ci(np.array(by_task[c][label], dtype=float))
            cells[c] = {"mean": mean, "ci95": [lo, hi], "questions": len(by_task[c][label][0])}
        avg, lo, hi = bootstrap_average_ci([np.array(by_task[c][label], dtype=float) for c in columns])
        rows.append({"label": label, "cells": cells, "average": {"mean": avg, "ci95": [lo, hi]}})
    aime_years = sorted({_task(b) for b in results["evaluations"] if _task(b) in AIME_PARTS})
    return {"metric": metric, "columns": columns, "aime_years": aime_years, "rows": rows}


def training_compute(run_dir: Path) -> dict[str, Any]:
    """Tokens and time one training run spent, from its own files (config.yaml, metrics.jsonl, summary).

    * generated tokens: every sampled token (the n trained answers; for ILR also the discussion turns);
    * loss tokens: completion tokens that reach the loss (truncated answers are masked out when the run
      masks them);
    * forward tokens: prompt + completion tokens of the training forward, as TRL counts them.

    Per step, TRL logs the mean length over the whole (all-process) batch of per_device_train_batch_size x
    world_size sequences; with logging_steps > 1 a logged row averages its steps, so counts are exact
    for logging_steps = 1 and step-weighted otherwise. ILR's discussion tokens are the main process's share
    scaled by the world size.
    """
    import yaml

    config = (
        yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    )
    grpo = {**config, **(config.get("grpo") or {})}
    summary_path = run_dir / "train_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    world = int(summary.get("world_size", 1))
    rows_per_step = int(grpo.get("per_device_train_batch_size", 0)) * world
    masked = bool(grpo.get("mask_truncated_completions", False))
    generated = loss = forward = 0.0
    last_step: dict[str, int] = {}
    last_forward: dict[str, float] = {}
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    for m in metrics:
        if m.get("kind") == "trl" and "completions/mean_length" in m:
            steps = m["step"] - last_step.get(m["agent"], 0)
            last_step[m["agent"]] = m["step"]
            n = rows_per_step * steps
            generated += n * m["completions/mean_length"]
            kept = (1.0 - m["completions/clipped_ratio"]) * m["completions/mean_terminated_length"]
            loss += n * (kept if masked else m["completions/mean_length"])
            last_forward[m["agent"]] = float(m.get("num_tokens", 0.0))
        elif m.get("kind") == "ilr":
            generated += world * m.get("discussion_tokens", 0)
    forward = sum(last_forward.values())
    return {
        "steps": max(last_step.values(), default=0),
        "world_size": world,
        "generated_tokens": round(generated),
        "loss_tokens": round(loss),
        "forward_tokens": round(forward),
        "train_seconds": summary.get("seconds"),
    }


def paired_tests(
    results: dict[str, Any],
    pairs: list[tuple[str, str]],
    metrics: tuple[str, ...] = ("strict", "correct", "lenient"),
) -> list[dict[str, Any]]:
    """McNemar tests between labels on the same questions, per seed (seed k of a vs seed k of b)."""
    out = []
    for bench, by_label in results["evaluations"].items():
        for a, b in pairs:
            if a in by_label and b in by_label:
                for seed_index, (sa, sb) in enumerate(zip(by_label[a], by_label[b], strict=False)):
                    for metric in metrics:
                        if metric in sa and metric in sb:
                            test = mcnemar_exact(sa[metric], sb[metric])
                            out.append(
                                {
                                    "benchmark": bench,
                                    "a": a,
                                    "b": b,
                                    "seed_index": seed_index,
                                    "metric": metric,
                                    **test,
                                }
                            )
    return out


def _cell(stat: dict[str, Any]) -> str:
    return f"{100 * stat['mean']:.1f} [{100 * stat['ci95'][0]:.1f}, {100 * stat['ci95'][1]:.1f}]"


def table1_markdown(table: dict[str, Any]) -> list[str]:
    cols = table["columns"]
    first = table["rows"][0]["cells"] if table["rows"] else {}
    heads = [f"{TABLE1_COLUMNS[c]} ({first[c]['questions'] if c in first else '?'} q)" for c in cols]
    avg_name = "Avg (5 maths)" if len(cols) == len(TABLE1_COLUMNS) else f"Avg ({len(cols)} of 5 maths)"
    lines = [
        f"## Table 1 layout: accuracy %, {METRICS[table['metric']]}",
        "",
        "| model | " + " | ".join(heads) + f" | {avg_name} |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for row in table["rows"]:
        cells = [_cell(row["cells"][c]) for c in cols]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {_cell(row['average'])} |")
    years = " and ".join(y[-2:] for y in table["aime_years"])
    lines += [
        "",
        (
            f"AIME 20{years} are scored as one benchmark (their questions concatenated), as in the paper. "
            if years
            else ""
        )
        + f"{avg_name} is the unweighted mean of the columns shown"
        + ("" if len(cols) == len(TABLE1_COLUMNS) else " (the preset does not evaluate the others)")
        + ". Intervals: 95% percentile bootstrap over questions (and seeds); the average's interval "
        "resamples each benchmark's questions independently, so every benchmark keeps its weight of one.",
        "",
    ]
    return lines


def compute_markdown(compute: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Tokens and compute per method",
        "",
        (
            "| method | steps | generated tokens | tokens through the loss | training-forward tokens "
            "| train wall time (s) |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for label, c in compute.items():
        wall = f"{c['train_seconds']:.0f}" if c.get("train_seconds") is not None else "?"
        lines.append(
            f"| {label} | {c['steps']} | {c['generated_tokens']:,} | {c['loss_tokens']:,} | "
            f"{c['forward_tokens']:,} | {wall} |"
        )
    lines += [
        "",
        (
            "Budgets are equal in questions, samples (n answers per question and agent) and optimizer "
            "steps, "
            "**not in compute**: ILR also generates the discussion turns, and its trained answers carry the "
            "discussion as prompt context. Tokens are summed over a method's agents; generated = every "
            "sampled token, through the loss = answer tokens that receive gradient, training-forward = "
            "prompt + answer tokens of the loss forward as TRL counts them."
        ),
        "",
    ]
    return lines


def markdown(results: dict[str, Any], rows: list[dict[str, Any]], tests: list[dict[str, Any]]) -> str:
    lines = [f"# {results['name']}: single-agent GRPO vs ILR", ""]
    lines.append(results.get("description", "").strip())
    lines += [
        "",
        "Every trained agent is evaluated **alone** with the plain test-time prompt on questions never "
        "seen in training. Cells: mean % with a 95% bootstrap interval over questions"
        + (" and seeds" if any(r["seeds"] > 1 for r in rows) else "")
        + ".",
        "",
    ]
    if results.get("table1"):
        lines += table1_markdown(results["table1"])
    if results.get("compute"):
        lines += compute_markdown(results["compute"])
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        sub = [r for r in rows if r["benchmark"] == bench]
        lines += [
            f"## {bench} ({sub[0]['questions']} questions, {sub[0]['seeds']} seed(s))",
            "",
            "| model | " + " | ".join(METRICS.values()) + " | mean length (tokens) |",
            "|---|" + "---|" * (len(METRICS) + 1),
        ]
        for r in sub:
            cells = [
                f"{100 * r[k]['mean']:.1f} [{100 * r[k]['ci95'][0]:.1f}, {100 * r[k]['ci95'][1]:.1f}]"
                for k in METRICS
            ]
            lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {r['mean_length']:.1f} |")
        lines.append("")
    if tests:
        lines += [
            "## Paired tests (McNemar, exact, two-sided)",
            "",
            "| benchmark | a | b | metric | only a right | only b right | p |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in tests:
            lines.append(
                f"| {t['benchmark']} | {t['a']} | {t['b']} | {METRICS[t['metric']]} | {t['only_a']} | "
                f"{t['only_b']} | {t['p_value']:.3g} |"
            )
        lines.append("")
    if results.get("held_out"):
        lines += [
            "## Held-out check",
            "",
            "| benchmark | questions evaluated | dropped (text also in training) |",
            "|---|---|---|",
        ]
        lines += [f"| {b} | {h['evaluated']} | {h['dropped']} |" for b, h in results["held_out"].items()]
        lines.append("")
    if results.get("timing"):
        lines += ["## Time", "", "| phase | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in results["timing"].items()]
        lines.append("")
    if results.get("notes"):
        lines += ["## What this run can and cannot show", "", results["notes"].strip(), ""]
    lines += [
        "## Plots",
        "",
        "![training reward](training_reward.png)",
        "",
        "![mode mix](mode_mix.png)",
        "",
        "![calibration shift](calibration_shift.png)",
        "",
    ]
    return "\n".join(lines)


def _training_series(metrics: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per agent: reward and accuracy per step, from ILR's rows or, for the baseline, TRL's own logs."""
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    ilr_rows = [m for m in metrics if m.get("kind") == "ilr"]
    if ilr_rows:
        for m in ilr_rows:
            s = series.setdefault(m["agent"], {"reward": [], "accuracy": []})
            s["reward"].append((m["step"], m["reward_raw_mean"]))
            s["accuracy"].append((m["step"], m["accuracy"]))
        return series
    for m in metrics:
        if m.get("kind") == "trl" and "reward" in m:
            s = series.setdefault(m["agent"], {"reward": [], "accuracy": []})
            s["reward"].append((m["step"], m["reward"]))
            acc = next(
                (
                    v
                    for k, v in m.items()
                    if k.startswith("rewards/") and "correct" in k and k.endswith("/mean")
                ),
                None,
            )
            if acc is not None:
                s["accuracy"].append((m["step"], acc))
    return series


def plots(run_dir: Path, training_logs: dict[str, list[dict[str, Any]]]) -> list[Path]:
    """training_logs: method label -> metrics.jsonl rows. Writes three PNGs; returns their paths. Plot names
    are fixed so report.md can link them; the calibration figure sits beside the mode mix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return [draw(plt, run_dir, training_logs) for draw in (_reward_plot, _mode_plot, _shift_plot)]


def _finish(plt: Any, fig: Any, axes: Any, ylabels: tuple[str, ...], path: Path) -> Path:
    """Every training figure's axes, legend and file the same way."""
    for ax, label in zip(axes, ylabels, strict=True):
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ilr_rows(training_logs: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(curve label, that agent's ILR step rows in step order) for every ILR run and agent."""
    for method, metrics in training_logs.items():
        rows = [m for m in metrics if m.get("kind") == "ilr"]
        for agent in dict.fromkeys(m["agent"] for m in rows):
            yield (
                f"{method} {agent}",
                sorted((m for m in rows if m["agent"] == agent), key=lambda m: m["step"]),
            )


def _reward_plot(plt: Any, run_dir: Path, training_logs: dict[str, list[dict[str, Any]]]) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method, metrics in training_logs.items():
        for agent, s in _training_series(metrics).items():
            for ax, key in zip(axes, ("reward", "accuracy"), strict=True):
                if s[key]:
                    steps, values = zip(*sorted(s[key]), strict=True)
                    ax.plot(steps, values, label=f"{method} {agent}", alpha=0.8)
    labels = ("training reward (raw)", "training accuracy")
    return _finish(plt, fig, axes, labels, run_dir / "training_reward.png")


def _mode_plot(plt: Any, run_dir: Path, training_logs: dict[str, list[dict[str, Any]]]) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, mine in _ilr_rows(training_logs):
        steps = [m["step"] for m in mine]
        coop = [m["mode_counts"].get("cooperate", 0) / max(1, sum(m["mode_counts"].values())) for m in mine]
        axes[0].plot(steps, coop, label=label)
        axes[1].plot(steps, [m["shift"].get("shift_abs_mean", 0.0) for m in mine], label=label)
    labels = ("fraction of questions in cooperation", "mean |calibrated − raw reward|")
    return _finish(plt, fig, axes, labels, run_dir / "mode_mix.png")


def _shift_plot(plt: Any, run_dir: Path, training_logs: dict[str, list[dict[str, Any]]]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, mine in _ilr_rows(training_logs):
        shift = [m["reward_cal_mean"] - m["reward_raw_mean"] for m in mine]
        ax.plot([m["step"] for m in mine], shift, label=label)
    labels = ("mean calibrated − mean raw reward",)
    return _finish(plt, fig, [ax], labels, run_dir / "calibration_shift.png")


def write_report(run_dir: Path, results: dict[str, Any], pairs: list[tuple[str, str]]) -> Path:
    rows = summary_rows(results)
    tests = paired_tests(results, pairs)
    results["summary"] = rows
    results["paired_tests"] = tests
    results["table1"] = table1(results)
    results["compute"] = {
        label: training_compute(Path(path).parent) for label, path in results.get("training_logs", {}).items()
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    logs = {label: read_jsonl(Path(p)) for label, p in results.get("training_logs", {}).items()}
    plots(run_dir, logs)
    report = run_dir / "report.md"
    report.write_text(markdown(results, rows, tests))
    return report
