"""Run by test_prep_multiprocess.py under ``accelerate launch`` (2 CPU processes, the fsdp2 accelerate
config, whose ``fsdp_cpu_ram_efficient_loading`` is what zeroes models on ranks > 0): trains one ILR step and
records, per rank, what the auxiliary models and the preparation gave that rank.

The spies wrap dependencies of the run (the env factory, the reward model's loader, the base models'
generate), never the preparation itself, so the same probe reads old and new code alike."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import ilr_env
from ilr_agents import rewards, training
from ilr_agents.config import ILRConfig
from ilr_agents.policies import transformers_policy

SEEN: dict = {"base_model_loads": 0, "reward_model_abs_sum": None, "difficulty": None, "abilities": None}


def _spy() -> None:
    make, init = ilr_env.make, rewards.RewardModelReward.__init__
    policy_init = transformers_policy.TransformersPolicy.__init__

    def spy_make(*args, **kwargs):
        if kwargs.get("abilities") is not None:  # the training envs (prompt-only envs get none)
            SEEN["difficulty"], SEEN["abilities"] = kwargs["difficulty"], kwargs["abilities"]
        return make(*args, **kwargs)

    def spy_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        SEEN["reward_model_abs_sum"] = float(sum(p.abs().sum() for p in self.model.parameters()))
        SEEN["reward_model_scores"] = self.score(["What is 2+2?", "Name a prime."], ["4", "\\boxed{7}"])

    def spy_policy(self, model, *args, **kwargs):
        SEEN["base_model_loads"] += isinstance(model, str)  # by name: a base model, not a trainer's live one
        policy_init(self, model, *args, **kwargs)

    ilr_env.make = spy_make
    rewards.RewardModelReward.__init__ = spy_init
    transformers_policy.TransformersPolicy.__init__ = spy_policy


def main(config_path: str, out_dir: str) -> None:
    _spy()
    training.train_ilr(ILRConfig.from_yaml(config_path))
    rank = os.environ.get("RANK", "0")
    Path(out_dir, f"prep.rank{rank}.json").write_text(json.dumps(SEEN, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
