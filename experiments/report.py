"""Turn a comparison's results.json and training logs into what people read: report.md and PNG plots.

Kept separate from the runner so a report can be rebuilt from files (``ilr compare --report-only``) without
retraining, and so the numbers in README come from the same code as the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ilr_agents.stats import bootstrap_ci, mcnemar_exact

METRICS = {
    "strict": "boxed and correct",
    "correct": "correct (stated answer)",
    "lenient": "lenient (or last number)",
    "boxed": "boxed rate",
}


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
    """training_logs: method label -> metrics.jsonl rows. Writes three PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method, metrics in training_logs.items():
        for agent, s in _training_series(metrics).items():
            for ax, key in zip(axes, ("reward", "accuracy"), strict=True):
                if s[key]:
                    steps, values = zip(*sorted(s[key]), strict=True)
                    ax.plot(steps, values, label=f"{method} {agent}", alpha=0.8)
    for ax, key in zip(axes, ("training reward (raw)", "training accuracy"), strict=True):
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(run_dir / "training_reward.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method, metrics in training_logs.items():
        rows = [m for m in metrics if m.get("kind") == "ilr"]
        for agent in dict.fromkeys(m["agent"] for m in rows):
            mine = sorted((m for m in rows if m["agent"] == agent), key=lambda m: m["step"])
            coop = [
                m["mode_counts"].get("cooperate", 0) / max(1, sum(m["mode_counts"].values())) for m in mine
            ]
            axes[0].plot([m["step"] for m in mine], coop, label=f"{method} {agent}")
            shift = [m["shift"].get("shift_abs_mean", 0.0) for m in mine]
            axes[1].plot([m["step"] for m in mine], shift, label=f"{method} {agent}")
    axes[0].set_ylabel("fraction of questions in cooperation")
    axes[1].set_ylabel("mean |calibrated − raw reward|")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(run_dir / "mode_mix.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, metrics in training_logs.items():
        rows = [m for m in metrics if m.get("kind") == "ilr"]
        for agent in dict.fromkeys(m["agent"] for m in rows):
            mine = sorted((m for m in rows if m["agent"] == agent), key=lambda m: m["step"])
            ax.plot(
                [m["step"] for m in mine],
                [m["reward_cal_mean"] - m["reward_raw_mean"] for m in mine],
                label=f"{method} {agent}",
            )
    ax.set_xlabel("step")
    ax.set_ylabel("mean calibrated − mean raw reward")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(run_dir / "calibration_shift.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    # Plot names are fixed so report.md can link them; the calibration figure sits beside the mode mix.
    return written


def write_report(run_dir: Path, results: dict[str, Any], pairs: list[tuple[str, str]]) -> Path:
    rows = summary_rows(results)
    tests = paired_tests(results, pairs)
    results["summary"] = rows
    results["paired_tests"] = tests
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    logs = {label: read_jsonl(Path(p)) for label, p in results.get("training_logs", {}).items()}
    plots(run_dir, logs)
    report = run_dir / "report.md"
    report.write_text(markdown(results, rows, tests))
    return report
