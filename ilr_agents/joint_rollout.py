"""One joint ILR rollout per step, shared by m GRPOTrainers (one per agent), each in its own thread.

Each trainer's ``train()`` runs once, in its own thread; every trainer's ``rollout_func`` enters a
barrier, the barrier's leader plays the discussion for this process's questions with the agents' LIVE
models (no trainer is inside forward/backward then, so weights are stable), scores and calibrates, and
each trainer leaves with its own slice: final-stage prompt ids (context, not loss), its n completions,
their log-probs, and the calibrated reward as an extra key that TRL forwards to the reward function.

Token passing: only the thread holding the token runs trainer code, in a fixed agent order, so every
process issues its collectives (DDP broadcasts, all-reduces, metric gathers) in the same order —
concurrent threads interleave them differently per rank and deadlock or corrupt DDP (measured
with two gloo processes). It also makes single-process runs deterministic.

Calibration needs each peer's WHOLE group of n samples on a question. TRL hands each process a slice
of the batch; because ``per_device_train_batch_size % n == 0`` (validated in ILRConfig) every slice holds
whole groups, and calibration runs here, inside the rollout, never on partial groups.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ilr_agents.calibration import calibrate, calibration_shift_stats, peer_statistics
from ilr_agents.config import ILRConfig
from ilr_agents.policies import SamplingParams
from ilr_agents.rewards import RawReward
from ilr_agents.rollout import run_episodes
from ilr_agents.vllm_training import rollout_policy


class JointRolloutError(RuntimeError):
    """The trainers disagreed on the batch, or a peer failed (the message says which)."""


def stable_seed(*parts: Any) -> int:
    """A seed from its parts that is the same in every process and Python run (unlike hash())."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class AgentSlice:
    """What one agent gets for one question: its final-stage prompts and its n scored samples."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    logprobs: list[list[float]]
    texts: list[str]
    truncated: list[bool]
    correct: list[bool]
    raw: list[float] = field(default_factory=list)
    calibrated: list[float] = field(default_factory=list)
    mode: str | None = None
    discussion_tokens: int = 0  # tokens this agent generated in earlier (untrained) stages
    turns: list[list[str]] = field(default_factory=list)  # [stage, message] of its earlier stages (viewer)


class JointRollout:
    """The shared rollout object; ``rollout_func_for(agent)`` is what each agent's trainer receives."""

    def __init__(
        self,
        config: ILRConfig,
        agents: list[str],
        envs: list[Any],
        raw_reward: RawReward,
        on_step: Callable[[int, dict[str, Any]], None] | None = None,
        timeout: float | None = 3600.0,
    ) -> None:
        self.config = config
        self.agents = agents
        self.envs = envs  # one env per question slot (fusion) or per question x sample (full_episode)
        self.raw_reward = raw_reward
        self.on_step = on_step
        self.policies: dict[str, Any] = {}
        self.trainers: dict[str, Any] = {}
        self.barrier = threading.Barrier(len(agents), timeout=timeout)
        self._cv = threading.Condition()
        self._turn = 0
        self._aborted = False
        self._prompts: dict[str, list[Any]] = {}
        self._result: dict[str, list[AgentSlice]] = {}
        self._order: list[str] = []
        self._last_start: float | None = None
        self.question_key: dict[str, Any] = {}  # prompt text -> Question

    # --- wiring ------------------------------------------------------------------------------------
    def bind(self, trainers: dict[str, Any]) -> None:
        """Give each agent its rollout policy (after GRPOTrainer.__init__, which wraps PEFT/forward and builds
        the vLLM engine): the trainer's vLLM engine with generation_backend=vllm, else its live model."""
        self.trainers = trainers
        for name, trainer in trainers.items():
            self.policies[name] = rollout_policy(trainer, name)

    # --- token passing -----------------------------------------------------------------------------
    def wait_turn(self, name: str) -> None:
        with self._cv:
            self._cv.wait_for(
                lambda: self._aborted or (self._turn < len(self.agents) and self.agents[self._turn] == name)
            )
            if self._aborted:
                raise JointRolloutError("a peer trainer failed; stopping this one too")

    def pass_turn(self) -> None:
        with self._cv:
            self._turn += 1
            self._cv.notify_all()

    def abort(self) -> None:
        with self._cv:
            self._aborted = True
            self._cv.notify_all()
        self.barrier.abort()

    # --- the hook TRL calls ------------------------------------------------------------------------
    def rollout_func_for(self, name: str) -> Callable[[list[Any], Any], dict[str, list[Any]]]:
        def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
            self._prompts[name] = list(prompts)
            self.pass_turn()
            try:
                if self.barrier.wait() == 0:
                    try:
                        self._lead(trainer.state.global_step + 1, trainer)
                    finally:
                        with self._cv:
                            self._turn = 0
                self.barrier.wait()
            except threading.BrokenBarrierError as exc:
                raise JointRolloutError("a peer trainer failed during the joint rollout") from exc
            self.wait_turn(name)
            return self._slice_for(name)

        rollout_func.__name__ = f"ilr_rollout_{name}"
        return rollout_func

    def _question_order(self) -> list[Any]:
        first = self._prompts[self.agents[0]]
        for agent in self.agents[1:]:
            if self._prompts[agent] != first:
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
        return [self.question_key[k] for k in keys]

    def _lead(self, step: int, trainer: Any) -> None:
        started = time.perf_counter()
        step_time = None if self._last_start is None else started - self._last_start
        self._last_start = started
        questions = self._question_order()
        self._order = [q.id for q in questions]
        slices = self._play(step, questions)
        raw = np.array([[slices[a][qi].raw for a in self.agents] for qi in range(len(questions))])
        cal = calibrate(raw, eps=self.config.calibration_eps) if self.config.calibration else raw
        for qi in range(len(questions)):
            for ai, agent in enumerate(self.agents):
                slices[agent][qi].calibrated = [float(x) for x in cal[qi, ai]]
        self._result = slices
        if self.on_step is not None:
            self.on_step(step, self._summary(step, questions, raw, cal, step_time))

    def _play(self, step: int, questions: list[Any]) -> dict[str, list[AgentSlice]]:
        c = self.config
        n = c.num_generations
        full = c.sampling == "full_episode"
        stage = SamplingParams(max_new_tokens=c.max_stage_tokens, temperature=c.temperature, top_k=0)
        final = SamplingParams(max_new_tokens=c.max_completion_length, temperature=c.temperature, top_k=0)
        per_episode = n if full else 1
        slices: dict[str, list[AgentSlice]] = {a: [] for a in self.agents}
        # "step": every question's episodes in one run_episodes call, so each agent makes one batched
        # generate call per stage. "question": one call per question, seeded by (seed, step, question) only,
        # so results do not depend on how TRL split the batch over processes (multi-process == single).
        if c.rollout_batching == "question":
            groups = [[qi] for qi in range(len(questions))]
        else:
            groups = [list(range(len(questions)))]
        for group in groups:
            ids = [questions[qi].id for qi in group]
            seed = stable_seed(c.seed, step, *ids)
            envs = [
                e
                for qi in group
                for e in (self.envs[qi * per_episode : (qi + 1) * per_episode] if full else [self.envs[qi]])
            ]
            records = run_episodes(
                envs,
                self.policies,
                question_ids=[i for i in ids for _ in range(per_episode)],
                seeds=[stable_seed(seed, "env", e) for e in range(len(envs))],
                params=stage.replace(seed=stable_seed(seed, "stage")),
                final_params=final.replace(seed=stable_seed(seed, "final")),
                final_n=1 if full else n,
            )
            for gi, qi in enumerate(group):
                mine = records[gi * per_episode : (gi + 1) * per_episode]
                for agent in self.agents:
                    slices[agent].append(agent_slice(agent, mine, questions[qi], self.raw_reward))
        return slices

    def _slice_for(self, name: str) -> dict[str, list[Any]]:
        """What TRL gets back for this agent: one entry per sample, questions in TRL's batch order."""
        pieces = [self._result[name][qi] for qi in range(len(self._order))]
        columns = {
            "prompt_ids": "prompt_ids",
            "completion_ids": "completion_ids",
            "logprobs": "logprobs",
            "ilr_reward": "calibrated",
            "ilr_raw_reward": "raw",
            "truncated": "truncated",
        }
        out = {key: [x for p in pieces for x in getattr(p, field)] for key, field in columns.items()}
        out["ilr_mode"] = [p.mode for p in pieces for _ in p.completion_ids]
        return out

    def _summary(
        self, step: int, questions: list[Any], raw: np.ndarray, cal: np.ndarray, step_time: float | None
    ) -> dict[str, Any]:
        shift = (
            calibration_shift_stats(raw, eps=self.config.calibration_eps) if self.config.calibration else {}
        )
        per_agent = {}
        for ai, agent in enumerate(self.agents):
            pieces = self._result[agent]
            modes: dict[str, int] = {}
            acc_by_mode: dict[str, list[float]] = {}
            for piece in pieces:
                modes[str(piece.mode)] = modes.get(str(piece.mode), 0) + 1
                acc_by_mode.setdefault(str(piece.mode), []).extend(float(x) for x in piece.correct)
            per_agent[agent] = {
                "reward_raw_mean": float(raw[:, ai].mean()),
                "reward_cal_mean": float(cal[:, ai].mean()),
                "accuracy": float(np.mean([x for p in pieces for x in p.correct])),
                "accuracy_by_mode": {m: float(np.mean(v)) for m, v in acc_by_mode.items()},
                "mode_counts": modes,
                "completion_tokens": int(sum(len(c) for p in pieces for c in p.completion_ids)),
                "discussion_tokens": int(sum(p.discussion_tokens for p in pieces)),
                "truncated_fraction": float(np.mean([t for p in pieces for t in p.truncated])),
            }
        records = []
        stats = peer_statistics(raw)
        for qi, q in enumerate(questions):
            for agent in self.agents:
                piece = self._result[agent][qi]
                records.append(
                    {
                        "question_id": q.id,
                        "agent": agent,
                        "mode": piece.mode,
                        "raw": piece.raw,
                        "calibrated": piece.calibrated,
                        "correct": piece.correct,
                        # what `ilr view` shows: the discussion and the n answers behind these rewards
                        "question": q.prompt,
                        "answer": q.answer,
                        "turns": piece.turns,
                        "texts": piece.texts,
                        "peer_stats": {k: v[qi].tolist() for k, v in stats.items()},
                    }
                )
        return {
            "step": step,
            "step_time": step_time,
            "questions": [q.id for q in questions],
            "agents": per_agent,
            "shift": shift,
            "records": records,
        }


def agent_slice(agent: str, records: list[Any], question: Any, raw_reward: RawReward) -> AgentSlice:
    """One agent's n final samples on one question (from one episode, or n full episodes), with their raw
    rewards: ILR's adapter of the raw reward, which reuses the env's grading of every sample."""
    samples = [s for r in records for s in r.final_samples[agent]]
    texts = [s.text for s in samples]
    truncated = [s.truncated for s in samples]
    return AgentSlice(
        prompt_ids=[list(s.prompt_ids or ()) for s in samples],
        completion_ids=[list(s.completion_ids or ()) for s in samples],
        logprobs=[list(s.logprobs or ()) for s in samples],
        texts=texts,
        truncated=truncated,
        correct=[s.correct for s in samples],
        raw=raw_reward(
            [question] * len(samples), texts, truncated, [float(s.reward or 0.0) for s in samples]
        ),
        mode=records[0].modes.get(agent),
        discussion_tokens=sum(
            len(st.said[agent].completion_ids or ())
            for r in records
            for st in r.stages  # with alternating turns the final stage spans the last m steps
            if agent in st.said and st.stage != r.stages[-1].stage
        ),
        turns=[
            [str(st.stage), st.said[agent].text]
            for st in records[0].stages
            if agent in st.said and st.stage != records[0].stages[-1].stage
        ],
    )


def prompt_key(prompt: Any) -> str:
    """How the rollout recognises a question in TRL's batch: the last user message of its plain prompt."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else str(prompt)
