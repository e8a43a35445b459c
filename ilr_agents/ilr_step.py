"""One ILR step as a plain function: play the discussions, reward every final sample, calibrate, and hand
each agent its slice.

    episodes = play(...)                         # the env's stages, every agent's live policy, in lockstep
    raw[q, i, k] = RawReward(sample k of agent i on question q, graded once by the env)
    calibrated = calibrate(raw)                  # Perception Calibration, Eq. 5 (calibration.py)
    slice_i = agent i's final prompts, its n completions, their log-probs and calibrated rewards

Which tokens receive gradient: only the final stage (the fusion answer in Idea3, the last round in
debate). Earlier turns enter as prompt context, exactly as the agent saw them; they are sampled once per
question (or per episode with ``sampling: full_episode``) and are not trained.

Calibration needs each peer's WHOLE group of n samples on a question, so a step always holds whole groups
(``per_device_train_batch_size % n == 0``, validated in ILRConfig). Nothing here knows of threads or TRL:
``joint_rollout.py`` adapts this step to m GRPOTrainers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ilr_agents.calibration import calibrate, calibration_shift_stats
from ilr_agents.config import ILRConfig
from ilr_agents.policies import Policy, SamplingParams
from ilr_agents.rewards import RawReward
from ilr_agents.rollout import EpisodeRecord, Sample, run_episodes


def stable_seed(*parts: Any) -> int:
    """A seed from its parts that is the same in every process and Python run (unlike hash())."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class AgentSlice:
    """What one agent trains on for one question: its final-stage prompts and its n rewarded samples."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    logprobs: list[list[float]]
    truncated: list[bool]
    correct: list[bool]
    raw: list[float]
    calibrated: list[float]
    mode: str | None = None
    discussion_tokens: int = 0  # tokens this agent generated in earlier (untrained) stages


@dataclass
class StepResult:
    """One step: its questions, their episodes (rewards on every final sample), and each agent's slices."""

    step: int
    agents: list[str]
    questions: list[Any]
    episodes: list[list[EpisodeRecord]]  # per question: one episode, or n with full_episode sampling
    raw: np.ndarray  # (questions, agents, n)
    calibrated: np.ndarray  # same shape; equal to raw with calibration off
    slices: dict[str, list[AgentSlice]] = field(default_factory=dict)  # per agent, questions in order
    shift: dict[str, float] = field(default_factory=dict)  # how far calibration moved the rewards

    def trl_columns(self, agent: str) -> dict[str, list[Any]]:
        """What TRL gets back for ``agent``: one entry per sample, questions in the step's order."""
        pieces = self.slices[agent]
        columns = {
            "prompt_ids": "prompt_ids",
            "completion_ids": "completion_ids",
            "logprobs": "logprobs",
            "ilr_reward": "calibrated",
            "ilr_raw_reward": "raw",
            "truncated": "truncated",
        }
        out = {key: [x for p in pieces for x in getattr(p, name)] for key, name in columns.items()}
        out["ilr_mode"] = [p.mode for p in pieces for _ in p.completion_ids]
        return out

    def agent_rows(self) -> dict[str, dict[str, Any]]:
        """Per agent: mean rewards, accuracy (overall and per mode), mode mix, tokens, truncation."""
        return {agent: self._row(ai, self.slices[agent]) for ai, agent in enumerate(self.agents)}

    def _row(self, ai: int, pieces: list[AgentSlice]) -> dict[str, Any]:
        modes: dict[str, int] = {}
        acc_by_mode: dict[str, list[float]] = {}
        for piece in pieces:
            modes[str(piece.mode)] = modes.get(str(piece.mode), 0) + 1
            acc_by_mode.setdefault(str(piece.mode), []).extend(float(x) for x in piece.correct)
        return {
            "reward_raw_mean": float(self.raw[:, ai].mean()),
            "reward_cal_mean": float(self.calibrated[:, ai].mean()),
            "accuracy": float(np.mean([x for p in pieces for x in p.correct])),
            "accuracy_by_mode": {m: float(np.mean(v)) for m, v in acc_by_mode.items()},
            "mode_counts": modes,
            "completion_tokens": int(sum(len(c) for p in pieces for c in p.completion_ids)),
            "discussion_tokens": int(sum(p.discussion_tokens for p in pieces)),
            "truncated_fraction": float(np.mean([t for p in pieces for t in p.truncated])),
        }


def ilr_step(
    step: int,
    questions: Sequence[Any],
    envs: Sequence[Any],
    policies: Mapping[str, Policy],
    raw_reward: RawReward,
    config: ILRConfig,
) -> StepResult:
    """Play, reward, calibrate and slice one step of ILR for ``questions`` (``envs``: one per question, or
    n per question with ``sampling: full_episode``; ``policies``: each agent's live policy)."""
    agents = list(policies)
    episodes = play(step, questions, envs, policies, config)
    raw = np.array(
        [
            [raw_reward([q] * len(s), s) for s in (final_samples(eps, a) for a in agents)]
            for q, eps in zip(questions, episodes, strict=True)
        ]
    )
    calibrated = calibrate(raw, eps=config.calibration_eps) if config.calibration else raw
    for qi, eps in enumerate(episodes):
        for ai, agent in enumerate(agents):
            for sample, r, c in zip(final_samples(eps, agent), raw[qi, ai], calibrated[qi, ai], strict=True):
                sample.reward, sample.calibrated_reward = float(r), float(c)
    slices = {a: [agent_slice(a, eps) for eps in episodes] for a in agents}
    shift = calibration_shift_stats(raw, eps=config.calibration_eps) if config.calibration else {}
    return StepResult(step, agents, list(questions), episodes, raw, calibrated, slices, shift)


def play(
    step: int,
    questions: Sequence[Any],
    envs: Sequence[Any],
    policies: Mapping[str, Policy],
    config: ILRConfig,
) -> list[list[EpisodeRecord]]:
    """Every question's episodes, seeded by (seed, step, question ids) only.

    ``rollout_batching: step`` plays all questions in one lockstep call (one batched generate per stage and
    agent); ``question`` plays one question per call, so results do not depend on how TRL split the batch
    over processes (multi-process == single-process).
    """
    c = config
    full = c.sampling == "full_episode"
    per_episode = c.num_generations if full else 1
    stage = SamplingParams(max_new_tokens=c.max_stage_tokens, temperature=c.temperature, top_k=0)
    final = SamplingParams(max_new_tokens=c.max_completion_length, temperature=c.temperature, top_k=0)
    indices = range(len(questions))
    groups = [[qi] for qi in indices] if c.rollout_batching == "question" else [list(indices)]
    out: list[list[EpisodeRecord]] = []
    for group in groups:
        ids = [questions[qi].id for qi in group]
        seed = stable_seed(c.seed, step, *ids)
        mine = [e for qi in group for e in envs[qi * per_episode : (qi + 1) * per_episode]]
        records = run_episodes(
            mine,
            policies,
            question_ids=[i for i in ids for _ in range(per_episode)],
            seeds=[stable_seed(seed, "env", e) for e in range(len(mine))],
            params=stage.replace(seed=stable_seed(seed, "stage")),
            final_params=final.replace(seed=stable_seed(seed, "final")),
            final_n=1 if full else c.num_generations,
        )
        out.extend(records[g * per_episode : (g + 1) * per_episode] for g in range(len(group)))
    return out


def final_samples(episodes: list[EpisodeRecord], agent: str) -> list[Sample]:
    """``agent``'s n final samples on one question (from one episode, or one from each of n)."""
    return [s for r in episodes for s in r.final_samples[agent]]


def agent_slice(agent: str, episodes: list[EpisodeRecord]) -> AgentSlice:
    """One agent's rewarded final samples on one question, as TRL needs them."""
    samples = final_samples(episodes, agent)
    return AgentSlice(
        prompt_ids=[list(s.prompt_ids or ()) for s in samples],
        completion_ids=[list(s.completion_ids or ()) for s in samples],
        logprobs=[list(s.logprobs or ()) for s in samples],
        truncated=[s.truncated for s in samples],
        correct=[s.correct for s in samples],
        raw=[float(s.reward or 0.0) for s in samples],
        calibrated=[float(s.calibrated_reward or 0.0) for s in samples],
        mode=episodes[0].modes.get(agent),
        discussion_tokens=sum(
            len(st.said[agent].completion_ids or ())
            for r in episodes
            for st in r.stages  # with alternating turns the final stage spans the last m steps
            if agent in st.said and st.stage != r.stages[-1].stage
        ),
    )
