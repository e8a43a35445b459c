"""The training methods `ilr train` and `ilr compare` can run, by the name a config's ``method`` gives.

The one place a method is chosen: ILR co-training (ilr_agents) and the single-agent GRPO baseline
(baselines) both take a validated ``ILRConfig`` and return the same ``TrainResult``.
"""

from __future__ import annotations

from collections.abc import Callable

from baselines.single_agent import train_single_agent
from experiments.pipeline.launch import needs_launch, train_in_processes
from ilr_agents.config import ILRConfig
from ilr_agents.run_folder import TrainResult
from ilr_agents.training import train_ilr
from ilr_env.grading.sandbox import sandbox_policy, set_sandbox_policy
from ilr_env.tasks import get_task

METHODS: dict[str, Callable[[ILRConfig], TrainResult]] = {
    "ilr": train_ilr,
    "grpo": train_single_agent,
}


def train(config: ILRConfig) -> TrainResult:
    """Run the method ``config.method`` names, under the config's sandbox policy: here, or under
    ``accelerate launch`` when the config asks for several processes or an accelerate config
    (``experiments/pipeline/launch.py``)."""
    require_bwrap_when_needed(config)
    if needs_launch(config):
        return train_in_processes(config)
    return METHODS[config.method](config)


def needs_bwrap(config: ILRConfig) -> bool:
    """Whether grading for ``config`` must be isolated by bubblewrap: the config says ``sandbox:
    require_bwrap`` or trains on a code task (an RL policy optimises against its grader, and the rlimits
    fallback is only a speed bump)."""
    return config.sandbox == "require_bwrap" or get_task(config.task).kind == "code"


def require_bwrap_when_needed(config: ILRConfig) -> None:
    """Make grading code without bubblewrap an error in this process (and its children) when ``config``
    needs it (``needs_bwrap``)."""
    set_run_sandbox_policy([config])


def set_run_sandbox_policy(configs: list[ILRConfig]) -> str:
    """Set the sandbox policy of a whole run ONCE, before anything is graded, and return it.

    Why once: a policy that changed mid-run (``auto`` while ``ilr compare`` evaluated the base models,
    ``require_bwrap`` once training started) graded the same answer two ways, so where bwrap is missing
    every trained model scored 0 on MBPP while its base model scored. The strictest policy any of the
    run's methods needs holds for every phase; otherwise the process's own (``ILR_SANDBOX``) stays.
    """
    if any(needs_bwrap(c) for c in configs):
        set_sandbox_policy("require_bwrap")
    return sandbox_policy()
