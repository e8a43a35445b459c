"""`ilr train`: ILR co-training (or the single-agent GRPO baseline) from a preset or YAML file.

    ilr train --config ilr-tiny --set max_steps=5
    ilr train --config run.yaml --set grpo.learning_rate=1e-4 --set grpo.weight_decay=0.01
    ilr train --config run.yaml --resume          # continue from the newest complete checkpoint

``--config`` is a name in experiments/configs/train/ or a path; ``--set KEY=VALUE`` (YAML values, dotted
keys into mappings such as ``grpo``) overrides it. The whole config is validated, TRL's GRPOConfig
included, before any model or data loads, so a typo costs seconds, not a model load.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap

from experiments.pipeline import presets
from ilr_agents.config import ILRConfig
from ilr_agents.config_files import apply_overrides, parse_assignments, read_yaml


def _fields_help() -> str:
    lines = ["config fields (set in the YAML file or with --set KEY=VALUE):"]
    for f in dataclasses.fields(ILRConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        text = f"{f.metadata.get('help', '')} (default: {default!r})"
        lines.append(f"  {f.name}")
        lines.extend(textwrap.wrap(text, 100, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _fields_help()
    parser.add_argument(
        "--config",
        help=f"preset name ({', '.join(presets.names('train'))}) or YAML file of the fields below",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field (YAML value), e.g. --set max_steps=5 --set grpo.learning_rate=1e-4",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest complete checkpoint in output_dir"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the resolved plan (launch, sharding, precision, reward, data, memory); "
        "load no model",
    )


def build_config(args: argparse.Namespace) -> ILRConfig:
    """The config the flags describe, validated (``train`` then builds TRL's GRPOConfig before loading)."""
    data = read_yaml(presets.resolve("train", args.config)) if args.config else {}
    overrides = parse_assignments(args.set)
    if args.resume:
        overrides["resume"] = True
    return ILRConfig.from_dict(apply_overrides(data, overrides))


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.dry_run:
        from experiments.pipeline.plan import train_plan
        from ilr_agents.grpo_config import check_grpo_args

        check_grpo_args(config)
        print("\n".join(train_plan(config, args.config or "(flags)").lines()))
        return 0
    from experiments.pipeline.methods import train  # after validation: it imports torch

    result = train(config)
    print(
        f"trained {result.step} steps ({', '.join(result.agents)}) -> {result.output_dir}"
        + (f" (resumed from step {result.resumed_from})" if result.resumed_from else "")
    )
    return 0
