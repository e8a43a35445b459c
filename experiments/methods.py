"""The training methods `ilr train` and `ilr compare` can run, by the name a config's ``method`` gives.

The one place a method is chosen: ILR co-training (ilr_agents) and the single-agent GRPO baseline
(baselines) both take a validated ``ILRConfig`` and return the same ``TrainResult``.
"""

from __future__ import annotations

from collections.abc import Callable

from baselines.single_agent import train_single_agent
from ilr_agents.config import ILRConfig
from ilr_agents.trainer_parts import TrainResult
from ilr_agents.training import train_ilr

METHODS: dict[str, Callable[[ILRConfig], TrainResult]] = {
    "ilr": train_ilr,
    "grpo": train_single_agent,
}


def train(config: ILRConfig) -> TrainResult:
    """Run the method ``config.method`` names."""
    return METHODS[config.method](config)
