"""One launch path for every training run: in this process, or under ``accelerate launch`` when the config
asks for several processes.

Why here: the same config must train the same way whether a user types ``ilr train`` or ``ilr compare``
(which trains each method, then evaluates alone). A config with ``num_processes: N > 1`` is started as
``accelerate launch --config_file experiments/accelerate/<accelerate_config>.yaml --num_processes N
--mixed_precision <mixed_precision> -m experiments.cli train --config <run>/launch.yaml``; the child
processes see ``WORLD_SIZE`` and train in place. The parent waits and reads the run's summary.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ilr_agents.config import ConfigError, ILRConfig

if TYPE_CHECKING:
    from ilr_agents.run_folder import TrainResult

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE_DIR = ROOT / "experiments" / "accelerate"


def accelerate_config_path(name: str) -> Path:
    """A shipped accelerate config by name (``fsdp2``, ``multi-cpu``) or a YAML path."""
    shipped = ACCELERATE_DIR / f"{name}.yaml"
    if shipped.is_file():
        return shipped.relative_to(ROOT)  # launches run from the repository root
    if Path(name).is_file():
        return Path(name).resolve()
    known = ", ".join(sorted(p.stem for p in ACCELERATE_DIR.glob("*.yaml")))
    raise ConfigError(f"accelerate_config={name!r} not found: use one of {known} or a YAML file path")


def in_launched_process() -> bool:
    """True inside a process that ``accelerate launch`` / torchrun started (they set WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def launch_command(config: ILRConfig, config_file: str | Path, target: list[str] | None = None) -> list[str]:
    """The ``accelerate launch`` command that trains ``config`` (saved at ``config_file``) in N processes;
    ``target`` replaces ``-m experiments.cli train --config FILE`` (a test runs a probe script instead)."""
    accelerate_file = accelerate_config_path(config.accelerate_config or "multi-cpu")
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_file),
        "--num_processes",
        str(config.num_processes),
        "--mixed_precision",
        config.mixed_precision,
        *(target or ["-m", "experiments.cli", "train", "--config", str(config_file)]),
    ]


def shown(command: list[str]) -> str:
    """``launch_command`` as a user would type it: ``accelerate launch ...``."""
    return shlex.join(["accelerate", "launch", *command[3:]])


def needs_launch(config: ILRConfig) -> bool:
    """Whether ``config`` must be started under ``accelerate launch`` (it is not already inside one)."""
    return (config.num_processes > 1 or config.accelerate_config is not None) and not in_launched_process()


def train_in_processes(config: ILRConfig) -> TrainResult:
    """Train ``config`` under ``accelerate launch`` with ``config.num_processes`` processes; wait; return
    the run's result as the processes left it (``train_summary.json``)."""
    from ilr_agents.run_folder import TrainResult  # torch: only when a run starts

    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "launch.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        launch_command(config, config_file.resolve()),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"training under accelerate launch failed (exit {done.returncode}); its output is above and its "
            f"logs are in {run_dir}"
        )
    summary = json.loads((run_dir / "train_summary.json").read_text())
    return TrainResult(
        run_dir, summary["step"], config.agents, run_dir / "metrics.jsonl", summary.get("resumed_from")
    )
