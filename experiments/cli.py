"""The `ilr` command: one subcommand per experiment entry point, each living in its own module.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only
when their subcommand runs, so `ilr --help` stays fast and torch-free.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "tasks": ("experiments.tasks_cmd", "list tasks and load/grade a benchmark's gold answers"),
    "eval": ("experiments.evaluate", "evaluate a model alone or several models in discussion"),
    "train": ("experiments.train", "ILR co-training of m agents (or the single-agent baseline)"),
    "difficulty": ("experiments.difficulty_cmd", "question difficulty D_q by the models' own self-ranking"),
    "compare": ("experiments.compare", "single-agent GRPO vs ILR from the same models, with a report"),
    "demo": ("experiments.demo", "the main job: the cpu-demo comparison (what `make demo` runs)"),
    "bench": ("experiments.bench", "the performance benchmark suite"),
    "doctor": (
        "experiments.doctor",
        "check this machine: sandbox isolation, GPU, vLLM, hub, data, models, caches",
    ),
    "view": ("experiments.viewer", "a run's discussions as one self-contained HTML page"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="ilr", description="Interactive Learning for LLM Reasoning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    sub_parser = argparse.ArgumentParser(prog=f"ilr {argv[0]}", description=SUBCOMMANDS[argv[0]][1])
    module.add_arguments(sub_parser)
    return int(module.run(sub_parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
