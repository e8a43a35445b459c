"""`ilr demo` (what `make demo` runs): the cpu-demo comparison, single-agent GRPO vs ILR, then its table.

Everything runs offline on CPU: the SmolLM2-135M-Instruct agents are built once from the PyPI wheel, the
task is procedural (reasoning-gym), and the report lands in runs/cpu-demo/.
"""

from __future__ import annotations

from typing import Any

from experiments.pipeline.compare import CompareConfig, run_comparison


def add_arguments(parser: Any) -> None:
    parser.add_argument("--config", default="cpu-demo", help="preset to run (default cpu-demo)")
    parser.add_argument("--output-root", default="runs", help="folder that holds runs")


def run(args: Any) -> int:
    config = CompareConfig.from_yaml(args.config, {"output_root": args.output_root})
    report = run_comparison(config)
    print(report.read_text())
    print(f"\nreport, plots and transcripts: {report.parent}")
    return 0
