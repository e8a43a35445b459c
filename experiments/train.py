"""`ilr train`: ILR co-training (or the single-agent GRPO baseline) from a YAML file and/or flags.

    ilr train --config experiments/configs/ilr-tiny.yaml --max-steps 5
    ilr train --config run.yaml --resume          # continue from the newest complete checkpoint

Every ILRConfig field is a flag (``--max-steps 5``, ``--models '[tiny, tiny-llama]'``, values parsed as
YAML); flags override the file. The whole config is validated before torch is even imported, so a typo
costs a second, not a model load.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import yaml

from ilr_agents.config import ConfigError, ILRConfig


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YAML value: {exc}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of ILRConfig fields (flags below override it)")
    parser.add_argument(
        "--resume",
        action="store_true",
        default=argparse.SUPPRESS,
        help="continue from the newest complete checkpoint in output_dir",
    )
    group = parser.add_argument_group("config fields (YAML values)")
    for f in dataclasses.fields(ILRConfig):
        if f.name == "resume":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=_yaml_value,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=f"{f.metadata.get('help', '')} (default: {default!r})",
        )


def build_config(args: argparse.Namespace) -> ILRConfig:
    overrides = {k: v for k, v in vars(args).items() if k != "config"}
    if getattr(args, "config", None):
        return ILRConfig.from_yaml(args.config, overrides)
    return ILRConfig.from_dict(overrides)


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"ilr train: config error: {exc}", file=sys.stderr)
        return 2
    from experiments.methods import train  # after validation: it imports torch

    try:
        result = train(config)
    except ConfigError as exc:
        print(f"ilr train: config error: {exc}", file=sys.stderr)
        return 2
    print(
        f"trained {result.step} steps ({', '.join(result.agents)}) -> {result.output_dir}"
        + (f" (resumed from step {result.resumed_from})" if result.resumed_from else "")
    )
    return 0
