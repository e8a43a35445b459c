"""Run by tests/test_training_fsdp.py under ``accelerate launch``: trains an ILR config and records, per
process and agent, how its trainer holds the model (distributed type, mixed precision, parameter class,
dtype, local and full sizes), so the test can check that each agent's model really is sharded."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from experiments.pipeline.methods import METHODS
from ilr_agents import joint_rollout
from ilr_agents.config import ILRConfig


def main(config_path: str, out_dir: str) -> None:
    seen = []
    play = joint_rollout.JointRollout._play

    def observing_play(self, step, questions):  # first rollout: the trainers have wrapped their models
        for name, trainer in ({} if seen else self.trainers).items():
            params = list(trainer.model.parameters())
            local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in params)
            seen.append(
                {
                    "agent": name,
                    "distributed_type": str(trainer.accelerator.distributed_type),
                    "mixed_precision": trainer.accelerator.mixed_precision,
                    "param_class": type(params[0]).__name__,
                    "dtype": str(params[0].dtype),
                    "local_numel": int(local),
                    "full_numel": int(sum(p.numel() for p in params)),
                }
            )
        return play(self, step, questions)

    joint_rollout.JointRollout._play = observing_play
    METHODS["ilr"](ILRConfig.from_yaml(config_path))
    rank = os.environ.get("RANK", "0")
    Path(out_dir, f"probe.rank{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
