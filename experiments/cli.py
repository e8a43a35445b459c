"""The `ilr` command: one subcommand per experiment entry point, each living in its own module.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only
when their subcommand runs, so `ilr --help` stays fast and torch-free.

Every user error (a bad config value, an unknown task, model or preset, a corrupt data file) prints one
line, ``ilr <cmd>: error: <message>``, and exits 2, as argparse does for a bad flag; ``--debug`` anywhere on
the command line shows the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "tasks": ("experiments.commands.tasks", "list tasks and load/grade a benchmark's gold answers"),
    "eval": ("experiments.commands.evaluate", "evaluate a model alone or several models in discussion"),
    "train": ("experiments.commands.train", "ILR co-training of m agents (or the single-agent baseline)"),
    "difficulty": (
        "experiments.commands.difficulty",
        "question difficulty D_q by the models' own self-ranking",
    ),
    "compare": (
        "experiments.commands.compare",
        "single-agent GRPO vs ILR from the same models, with a report",
    ),
    "demo": ("experiments.commands.demo", "the main job: the cpu-demo comparison (what `make demo` runs)"),
    "bench": ("experiments.commands.bench", "the performance benchmark suite"),
    "doctor": (
        "experiments.commands.doctor",
        "check this machine: sandbox isolation, GPU, vLLM, hub, data, models, caches",
    ),
    "view": (
        "experiments.commands.view",
        "every question of a run, one column per model, as one self-contained HTML page",
    ),
}


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the input is wrong" (their messages name the value and the fix)."""
    from experiments.benchmarks.common import BenchError
    from experiments.reports.viewer import ViewerInputError
    from ilr_agents.checkpoint import CheckpointError
    from ilr_agents.config import ConfigError
    from ilr_agents.models import UnknownModelError
    from ilr_agents.policies.base import PolicyError
    from ilr_agents.self_ranking import SelfRankError
    from ilr_env.difficulty import DifficultyError
    from ilr_env.env import ILREnvError
    from ilr_env.protocols import PromptError
    from ilr_env.tasks.errors import (
        DataFormatError,
        DataSourceError,
        TaskArgumentError,
        TaskNotFoundError,
        UnknownSplitError,
    )

    return (
        ConfigError,
        TaskNotFoundError,
        UnknownSplitError,
        TaskArgumentError,
        DataFormatError,
        DataSourceError,
        UnknownModelError,
        ILREnvError,
        PromptError,
        DifficultyError,
        CheckpointError,
        PolicyError,
        SelfRankError,
        BenchError,
        ViewerInputError,
    )


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse a subcommand's flags; an unknown ``--some-key`` on a command that takes ``--set`` says how to
    set that key instead (config values have one syntax: ``--set KEY=VALUE``)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        flag = extra[0]
        if getattr(args, "set", None) is not None and flag.startswith("--"):
            key = flag[2:].split("=")[0].replace("-", "_")
            parser.error(f"unrecognized argument {flag}: config values are set with --set {key}=VALUE")
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = argparse.ArgumentParser(
        prog="ilr",
        description="Interactive Learning for LLM Reasoning",
        epilog="--debug (with any command): show the traceback of an error instead of one line",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    command = argv[0]
    module = importlib.import_module(SUBCOMMANDS[command][0])
    sub_parser = argparse.ArgumentParser(prog=f"ilr {command}", description=SUBCOMMANDS[command][1])
    module.add_arguments(sub_parser)
    args = _parse(sub_parser, argv[1:])
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None and not Path(data_dir).is_dir():
        print(
            f"ilr {command}: error: --data-dir {data_dir}: no such folder; give the folder that holds the "
            "benchmark files, or leave it out to use $ILR_DATA_DIR",
            file=sys.stderr,
        )
        return 2
    try:
        return int(module.run(args) or 0)
    except Exception as exc:
        if debug or not isinstance(exc, user_errors()):
            raise
        print(f"ilr {command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
