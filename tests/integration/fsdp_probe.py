"""Run by test_launch.py under ``accelerate launch``: trains an ILR config and records, per
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
    make_rollout = joint_rollout.JointRollout.rollout_func_for

    def observing(self, name):  # each trainer's first rollout: it has wrapped its model by then
        rollout = make_rollout(self, name)

        def observed(prompts, trainer):
            if name not in {s["agent"] for s in seen}:
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
            return rollout(prompts, trainer)

        return observed

    joint_rollout.JointRollout.rollout_func_for = observing
    METHODS["ilr"](ILRConfig.from_yaml(config_path))
    rank = os.environ.get("RANK", "0")
    Path(out_dir, f"probe.rank{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
