"""ILR's step curves over the whole global batch, not one process's share of it.

Each process plays and calibrates only the questions TRL handed it (whole groups, see joint_rollout.py),
so the per-step rows (mode mix, accuracy per mode, rewards, calibration shift) that the main process logs
would describe 1/N of the batch. ``whole_step`` gathers every process's step onto the main process (token
ids and log-probs stay behind: the rows need only counts and lengths) and recomputes the shift there.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ilr_agents.calibration import calibration_shift_stats
from ilr_agents.distributed_prep import gather_to_main, rank_and_size
from ilr_agents.ilr_step import StepResult


def _light(result: StepResult) -> StepResult:
    """What the rows read: rewards, modes, correctness, truncation and completion lengths per sample."""
    slices = {
        agent: [
            replace(p, prompt_ids=[], logprobs=[], completion_ids=[[0] * len(c) for c in p.completion_ids])
            for p in pieces
        ]
        for agent, pieces in result.slices.items()
    }
    questions = [getattr(q, "id", q) for q in result.questions]
    return StepResult(result.step, result.agents, questions, [], result.raw, result.calibrated, slices)


def whole_step(result: StepResult, *, calibration: bool, eps: float) -> StepResult | None:
    """The step over every process's questions on the main process (None on the others); ``result`` itself
    in a single process. A collective: every process calls it once per step."""
    _, size = rank_and_size()
    if size == 1:
        return result
    parts = gather_to_main(_light(result))
    if parts is None:
        return None
    raw = np.concatenate([p.raw for p in parts])
    calibrated = np.concatenate([p.calibrated for p in parts])
    slices = {a: [piece for p in parts for piece in p.slices[a]] for a in result.agents}
    questions = [q for p in parts for q in p.questions]
    shift = calibration_shift_stats(raw, eps=eps) if calibration else {}
    return StepResult(result.step, result.agents, questions, [], raw, calibrated, slices, shift)
