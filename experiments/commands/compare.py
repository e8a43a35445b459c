"""`ilr compare`: single-agent GRPO vs ILR from the same initial models, each trained agent evaluated alone,
then the report (the experiment itself: ``experiments/pipeline/compare.py``)."""

from __future__ import annotations

from typing import Any

from experiments.pipeline import presets
from experiments.pipeline.compare import CompareConfig, check_trainer_settings, run_comparison
from ilr_agents.config_files import parse_assignments


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--config",
        required=True,
        help=f"preset name ({', '.join(presets.names('compare'))}) or YAML path",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset value (YAML); compare fields by name (--set seeds=[0,1,2], --set "
        "name=run2), anything else is a training field shared by every method (--set max_steps=5, "
        "--set grpo.learning_rate=1e-4)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild report.md and plots from results.json"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the resolved plan (launch, sharding, precision, reward, data, memory); "
        "load no model",
    )


def run(args: Any) -> int:
    config = CompareConfig.from_yaml(args.config, parse_assignments(args.set))
    if args.dry_run:
        from experiments.pipeline.plan import compare_plan

        check_trainer_settings(config)
        print("\n".join(compare_plan(config, args.config).lines()))
        return 0
    report = run_comparison(config, report_only=args.report_only)
    print(report.read_text())
    print(f"\nwritten: {report.parent}")
    return 0
