"""Play many ILR episodes in lockstep: one batched generate call per (stage, policy) for all live episodes.

Why lockstep: generation dominates the cost, and a policy is far faster on one batch of E prompts than on
E single prompts. Every env advances one step at a time (a stage, or with alternating turns one agent's
turn of a stage); at each step the prompts of all live episodes go to each writing agent's policy in a
single call (agents that share one policy object share that call too).
At the final stage each agent's answer is sampled ``final_n`` times (the GRPO group); every sample is
scored with ``env.score`` and the first one is the action passed to ``env.step``.

The output records are typed (``EpisodeRecord`` of ``StageRecord``s and ``Sample``s holding the env's
``Grade``); ``to_dict`` turns one into plain JSON only when a transcript is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ilr_agents.policies.base import Completion, Policy, SamplingParams
from ilr_env.grading import Grade

__all__ = ["EpisodeRecord", "RolloutError", "Sample", "StageRecord", "run_episodes", "write_jsonl"]


class RolloutError(ValueError):
    """Inconsistent rollout arguments (policies vs agents, episode counts), naming the fix."""


def jsonable(value: Any) -> Any:
    """Convert infos/grades/questions to JSON-safe data without losing fields (unknown objects -> str)."""
    if hasattr(value, "to_dict") and not isinstance(value, type):  # records and grades say how
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return jsonable(value.item())
    return str(value)


@dataclass
class Sample:
    """One reply: its text, how generation ended, token fields when the policy gives them, and, for a
    final-stage sample, its grade and reward: the env's, or in training the raw reward, with the
    calibrated reward the agent trained on beside it."""

    text: str
    finish_reason: str = "stop"
    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None
    reward: float | None = None
    grade: Grade | None = None
    calibrated_reward: float | None = None

    @classmethod
    def of(cls, completion: Completion, reward: float | None = None, grade: Grade | None = None) -> Sample:
        reward = None if reward is None else float(reward)
        return cls(
            completion.text,
            completion.finish_reason,
            completion.prompt_ids,
            completion.completion_ids,
            completion.logprobs,
            reward,
            grade,
        )

    @property
    def truncated(self) -> bool:
        """Cut at the token limit rather than ended by the model."""
        return self.finish_reason == "length"

    @property
    def correct(self) -> bool:
        return self.grade is not None and bool(self.grade.correct)

    def token_fields(self) -> dict[str, Any]:
        """finish_reason and the token fields the policy gave (absent ones are left out of transcripts)."""
        fields: dict[str, Any] = {"finish_reason": self.finish_reason}
        for name in ("prompt_ids", "completion_ids", "logprobs"):
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        return fields

    def to_dict(self, *, tokens: bool = True) -> dict[str, Any]:
        graded = {} if self.grade is None else {"reward": self.reward, "grade": self.grade}
        if self.calibrated_reward is not None:
            graded["calibrated_reward"] = self.calibrated_reward
        fields = self.token_fields() if tokens else {"finish_reason": self.finish_reason}
        return jsonable({"text": self.text, **graded, **fields})


@dataclass
class StageRecord:
    """One stage of one episode: what each agent saw (its prompt chat) and said (its first sample)."""

    stage: str | None
    index: int | None
    seen: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    said: dict[str, Sample] = field(default_factory=dict)

    def to_dict(self, *, tokens: bool = True) -> dict[str, Any]:
        agents = {
            a: {
                "messages": self.seen[a],
                "message": s.text,
                **(s.token_fields() if tokens else {"finish_reason": s.finish_reason}),
            }
            for a, s in self.said.items()
        }
        return jsonable({"stage": self.stage, "index": self.index, "agents": agents})


@dataclass
class EpisodeRecord:
    """One episode: the question, every stage, and each agent's n scored final samples (the first was its
    answer). ``rewards``/``infos`` are what the env returned at its last step.
    """

    episode: int
    seed: int | None
    question: dict[str, Any]
    agents: list[str]
    modes: dict[str, Any]
    stages: list[StageRecord] = field(default_factory=list)
    final_samples: dict[str, list[Sample]] = field(default_factory=dict)
    rewards: dict[str, float] = field(default_factory=dict)
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self, *, tokens: bool = True) -> dict[str, Any]:
        """The transcript line: plain JSON (stage entries keep ``messages``/``message``, samples ``text``).

        Evaluation transcripts and training's ``rollouts.rank<r>.jsonl`` are both these lines.
        ``tokens=False`` leaves out token ids and log-probs (training writes every step: they would dominate).
        """
        out = {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["stages"] = [stage.to_dict(tokens=tokens) for stage in self.stages]
        out["final_samples"] = {
            agent: [sample.to_dict(tokens=tokens) for sample in samples]
            for agent, samples in self.final_samples.items()
        }
        return out

    def answer(self, agent: str) -> Sample:
        """The sample this agent submitted (its first final sample)."""
        return self.final_samples[agent][0]

    def final_answer(self, agent: str) -> str:
        return self.answer(agent).text

    def correct(self, agent: str) -> bool:
        info = self.infos.get(agent, {})
        if "correct" in info:
            return bool(info["correct"])
        return self.answer(agent).correct


def write_jsonl(records: Sequence[EpisodeRecord], path: str | Path) -> Path:
    """One JSON object per line; parent folders are created."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
    return out


def _policy_map(policies: Mapping[str, Policy] | Sequence[Policy], agents: list[str]) -> dict[str, Policy]:
    if isinstance(policies, Mapping):
        missing = [a for a in agents if a not in policies]
        if missing:
            raise RolloutError(f"no policy for {missing}; pass one per agent of {agents}")
        return {a: policies[a] for a in agents}
    policies = list(policies)
    if len(policies) != len(agents):
        raise RolloutError(
            f"{len(policies)} policies for {len(agents)} agents {agents}: pass exactly one per agent"
        )
    return dict(zip(agents, policies))


def _make_envs(envs: Sequence[Any] | Callable[[], Any], count: int | None) -> list[Any]:
    if callable(envs) and not isinstance(envs, Sequence):
        if count is None:
            raise RolloutError(
                "with an env factory, pass num_episodes (or question_ids / seeds) to say how many"
            )
        return [envs() for _ in range(count)]
    envs = list(envs)
    if count is not None and count != len(envs):
        raise RolloutError(
            f"{len(envs)} envs given for {count} episodes: pass one env per episode or a factory"
        )
    if len({id(e) for e in envs}) != len(envs):
        raise RolloutError("the same env object appears twice; lockstep needs one env instance per episode")
    return envs


def run_episodes(
    envs: Sequence[Any] | Callable[[], Any],
    policies: Mapping[str, Policy] | Sequence[Policy],
    *,
    num_episodes: int | None = None,
    seeds: Sequence[int] | int | None = None,
    question_ids: Sequence[str] | None = None,
    params: SamplingParams | None = None,
    final_params: SamplingParams | None = None,
    final_n: int = 1,
    modes: Mapping[str, str] | None = None,
    progress: bool = False,
) -> list[EpisodeRecord]:
    """Play E episodes in lockstep and return one EpisodeRecord per episode.

    Args:
        envs: one env per episode, or a zero-argument factory (then E comes from num_episodes,
            question_ids or seeds).
        policies: {agent: policy} or a list aligned with ``env.possible_agents``; a policy object shared by
            several agents is called once per stage for all of them.
        seeds: reset seeds, one per episode, or a base seed (episode e gets base + e).
        question_ids: reset option ``question_id`` per episode (picks the question).
        params: sampling for the discussion stages (n forced to 1); final_params (default: params) for the
            final stage, with n = final_n.
        modes: fixed per-agent mode override, sent as the reset option ``modes`` (the env decides how).
    """
    if final_n < 1:
        raise RolloutError(f"final_n={final_n}: must be >= 1")
    env_list = _make_envs(envs, _episode_count(num_episodes, question_ids, seeds))
    count = len(env_list)
    if isinstance(seeds, int):
        episode_seeds: list[int | None] = [seeds + e for e in range(count)]
    else:
        episode_seeds = list(seeds) if seeds is not None else [None] * count
    stage_params = (params or SamplingParams()).replace(n=1)
    last_params = (final_params or params or SamplingParams()).replace(n=final_n)

    agents = list(env_list[0].possible_agents) if env_list else []
    policy_of = _policy_map(policies, agents)
    infos: list[dict[str, Any]] = []
    records: list[EpisodeRecord] = []
    for e, env in enumerate(env_list):
        qid = None if question_ids is None else question_ids[e]
        info = _reset(env, episode_seeds[e], qid, modes)
        infos.append(info)
        records.append(
            EpisodeRecord(
                episode=e,
                seed=episode_seeds[e],
                question=jsonable(env.question),
                agents=list(env.possible_agents),
                modes={a: info[a].get("mode") for a in info},
            )
        )

    bar = None
    if progress and env_list:
        bar = tqdm(
            total=count * int(infos[0][agents[0]].get("num_stages", 1)), desc="rollout", unit="ep-stage"
        )
    with contextlib.ExitStack() as caches:  # prompt-prefix reuse across stages, where a policy offers it
        for policy in {id(p): p for p in policy_of.values()}.values():
            if hasattr(policy, "prefix_cache"):
                caches.enter_context(policy.prefix_cache())
        _play_stages(env_list, agents, policy_of, infos, records, stage_params, last_params, bar)
    if bar is not None:
        bar.close()
    return records


def _episode_count(
    num_episodes: int | None, question_ids: Sequence[str] | None, seeds: Sequence[int] | int | None
) -> int | None:
    """E from whichever of num_episodes, question_ids and seeds are given (they must agree)."""
    count = num_episodes
    for name, seq in (("question_ids", question_ids), ("seeds", None if isinstance(seeds, int) else seeds)):
        if seq is not None:
            if count is not None and count != len(seq):
                raise RolloutError(f"{name} has {len(seq)} entries for {count} episodes: make them agree")
            count = len(seq)
    return count


def _reset(env: Any, seed: int | None, question_id: str | None, modes: Mapping[str, str] | None) -> Any:
    options: dict[str, Any] = {}
    if question_id is not None:
        options["question_id"] = question_id
    if modes is not None:
        options["modes"] = dict(modes)
    _, info = env.reset(seed=seed, options=options or None)
    if modes is not None and any(info[a].get("mode") != m for a, m in modes.items() if a in info):
        raise RolloutError(
            f"the env ignored the per-agent modes override {dict(modes)} (it reports "
            f"{ {a: info[a].get('mode') for a in info} }); build the env with make(..., mode=...) "
            "instead, or use an env whose reset honours options['modes']"
        )
    return info


def _play_stages(
    env_list: list[Any],
    agents: list[str],
    policy_of: dict[str, Policy],
    infos: list[dict[str, Any]],
    records: list[EpisodeRecord],
    stage_params: SamplingParams,
    last_params: SamplingParams,
    bar: Any,
) -> None:
    call_index = 0
    while any(env.agents for env in env_list):
        live = [e for e, env in enumerate(env_list) if env.agents]
        actions: dict[int, dict[str, str]] = {e: {} for e in live}
        seen: dict[int, dict[str, list[dict[str, str]]]] = {e: {} for e in live}
        said: dict[int, dict[str, Sample]] = {e: {} for e in live}
        for (_, final), members in _requests(env_list, agents, live, infos, policy_of).items():
            chosen = last_params if final else stage_params
            if chosen.seed is not None:
                chosen = chosen.replace(seed=chosen.seed + call_index)
            call_index += 1
            chats = [infos[e][agent]["messages"] for agent, e in members]
            outputs = _generate(policy_of[members[0][0]], chats, chosen)
            for (agent, e), samples, chat in zip(members, outputs, chats):
                actions[e][agent] = samples[0].text
                seen[e][agent] = chat
                said[e][agent] = Sample.of(samples[0])
                if final:
                    records[e].final_samples[agent] = [
                        Sample.of(sample, *env_list[e].score(agent, sample.text, truncated=_cut(sample)))
                        for sample in samples
                    ]
        for e in live:
            info0 = infos[e][next(iter(actions[e]))]
            records[e].stages.append(
                StageRecord(info0.get("stage"), info0.get("stage_index"), seen[e], said[e])
            )
            _, rewards, _, _, new_infos = env_list[e].step(actions[e])
            infos[e] = new_infos
            if not env_list[e].agents:
                records[e].rewards = {a: float(r) for a, r in rewards.items()}
                records[e].infos = jsonable(new_infos)
        if bar is not None:
            bar.update(len(live))


def _cut(completion: Completion) -> bool:
    return completion.finish_reason == "length"


def _requests(
    env_list: list[Any], agents: list[str], live: list[int], infos: list[dict[str, Any]], policy_of: dict
) -> dict[tuple[int, bool], list[tuple[str, int]]]:
    """This step's (agent, episode) requests grouped by policy object and final flag: one call per group.

    With alternating turns only the agent whose turn it is writes (one call per agent and turn).
    """
    groups: dict[tuple[int, bool], list[tuple[str, int]]] = {}
    for agent in agents:
        for e in live:
            if agent in env_list[e].agents and infos[e][agent].get("acting", True):
                final = bool(infos[e][agent].get("final"))
                groups.setdefault((id(policy_of[agent]), final), []).append((agent, e))
    return groups


def _generate(policy: Policy, chats: list[Any], params: SamplingParams) -> list[list[Completion]]:
    outputs = policy.generate(chats, params)
    if len(outputs) != len(chats) or any(len(o) != params.n for o in outputs):
        raise RolloutError(
            f"policy {policy.name!r} returned {[len(o) for o in outputs]} completions for "
            f"{len(chats)} chats with n={params.n}: a Policy must return n completions per chat"
        )
    return outputs
