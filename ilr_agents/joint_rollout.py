"""ILR's step (``ilr_step.py``) as the ``rollout_func`` of m GRPOTrainers, one per agent, each in its own
thread.

Every trainer's ``rollout_func`` hands its batch of prompts to a ``Rendezvous``; once all have arrived,
one thread runs the step for this process's questions with the agents' LIVE policies (no trainer is inside
forward/backward then, so weights are stable), and each trainer leaves with its own slice: final-stage
prompt ids (context, not loss), its n completions, their log-probs, and the calibrated reward as an extra
key that TRL forwards to the reward function. TRL hands each process a slice of the batch; every slice
holds whole groups of n, so calibration never sees a partial group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ilr_agents.config import ILRConfig
from ilr_agents.ilr_step import StepResult, ilr_step
from ilr_agents.rendezvous import Rendezvous, RendezvousError
from ilr_agents.rewards import RawReward
from ilr_agents.vllm_training import rollout_policy


class JointRolloutError(RendezvousError):
    """The trainers disagreed on the batch (the message says how to fix it)."""


class JointRollout:
    """The TRL adapter; ``rollout_func_for(agent)`` is what each agent's trainer receives.

    ``questions`` maps each question's ``prompt_key`` to its Question; ``on_step(result, step_time)``
    receives every step's result (the run's log).
    """

    def __init__(
        self,
        config: ILRConfig,
        agents: list[str],
        envs: list[Any],
        raw_reward: RawReward,
        questions: Mapping[str, Any],
        on_step: Callable[[StepResult, float | None], None],
        timeout: float | None = 3600.0,
    ) -> None:
        self.config = config
        self.agents = list(agents)
        self.envs = envs  # one env per question slot (fusion) or per question x sample (full_episode)
        self.raw_reward = raw_reward
        self.questions = dict(questions)
        self.on_step = on_step
        self.rendezvous = Rendezvous(self.agents, timeout)
        self._policies: dict[str, Any] = {}
        self._last_start: float | None = None

    def rollout_func_for(self, name: str) -> Callable[[list[Any], Any], dict[str, list[Any]]]:
        def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
            if name not in self._policies:  # after GRPOTrainer.__init__: PEFT and any vLLM engine exist
                self._policies[name] = rollout_policy(trainer, name)
            step = trainer.state.global_step + 1
            result = self.rendezvous.meet(name, list(prompts), lambda batches: self._lead(step, batches))
            return result.trl_columns(name)

        rollout_func.__name__ = f"ilr_rollout_{name}"
        return rollout_func

    def _lead(self, step: int, batches: dict[str, list[Any]]) -> StepResult:
        started = time.perf_counter()
        step_time = None if self._last_start is None else started - self._last_start
        self._last_start = started
        policies = {a: self._policies[a] for a in self.agents}
        result = ilr_step(
            step, self._question_order(batches), self.envs, policies, self.raw_reward, self.config
        )
        self.on_step(result, step_time)
        return result

    def _question_order(self, batches: dict[str, list[Any]]) -> list[Any]:
        first = batches[self.agents[0]]
        for agent in self.agents[1:]:
            if batches[agent] != first:
                raise JointRolloutError(
                    f"{agent} got a different batch than {self.agents[0]}: every trainer needs the same "
                    "dataset and seed so that all agents answer the same questions"
                )
        n = self.config.num_generations
        keys = [prompt_key(p) for p in first[::n]]
        if [prompt_key(p) for p in first] != [k for k in keys for _ in range(n)]:
            raise JointRolloutError(
                "TRL's batch is not whole groups of n repeated prompts; keep "
                "per_device_train_batch_size a multiple of num_generations"
            )
        return [self.questions[k] for k in keys]


def prompt_key(prompt: Any) -> str:
    """How the rollout recognises a question in TRL's batch: the last user message of its plain prompt."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else str(prompt)
