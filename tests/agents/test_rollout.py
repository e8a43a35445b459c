"""Lockstep rollout: call counts, final-stage sampling and scoring, records, JSONL; with the real env too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_agents.policies import SamplingParams, ScriptedPolicy
from ilr_agents.rollout import EpisodeRecord, RolloutError, run_episodes, write_jsonl

STAGES = ["share", "analyse", "fuse"]


@dataclass
class FakeGrade:
    correct: bool
    reward: float
    extracted: str | None
    reason: str
    has_box: bool = False


class FakeEnv:
    """Follows the env contract closely enough to test the runner alone: 3 stages, peers' messages shown."""

    def __init__(self, num_agents: int = 2) -> None:
        self.possible_agents = [f"agent_{i}" for i in range(num_agents)]
        self.agents: list[str] = []
        self.question: dict[str, Any] = {}
        self.steps = 0

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        qid = (options or {}).get("question_id", f"q{seed}")
        self.question = {"id": qid, "prompt": f"What is {qid}?", "answer": "5"}
        self.options = options
        self.history: list[dict[str, str]] = []
        self.stage = 0
        return self._obs()

    def _info(self, agent: str) -> dict[str, Any]:
        peers = "\n".join(f"{a}: {m[a]}" for m in self.history for a in m if a != agent)
        return {
            "messages": [
                {"role": "user", "content": f"[{STAGES[self.stage]}] {self.question['prompt']}\n{peers}"}
            ],
            "stage": STAGES[self.stage],
            "stage_index": self.stage,
            "num_stages": 3,
            "final": self.stage == 2,
            "question_id": self.question["id"],
            "mode": ((self.options or {}).get("modes") or {}).get(agent, "cooperate"),
        }

    def _obs(self):
        infos = {a: self._info(a) for a in self.agents}
        return {a: i["messages"][0]["content"] for a, i in infos.items()}, infos

    def score(self, agent: str, text: str, *, truncated: bool = False):
        ok = "\\boxed{5}" in text
        return float(ok), FakeGrade(ok, float(ok), "5" if ok else None, "match" if ok else "no_answer", ok)

    def step(self, actions: dict[str, str]):
        self.steps += 1
        assert set(actions) == set(self.agents)
        self.history.append(dict(actions))
        if self.stage == 2:
            rewards = {a: self.score(a, t)[0] for a, t in actions.items()}
            infos = {a: {"correct": bool(rewards[a]), "reward": rewards[a]} for a in self.agents}
            self.agents = []
            return {}, rewards, {a: True for a in rewards}, {a: False for a in rewards}, infos
        self.stage += 1
        obs, infos = self._obs()
        return (
            obs,
            {a: 0.0 for a in self.agents},
            {a: False for a in self.agents},
            {a: False for a in self.agents},
            infos,
        )


def speaker(name: str):
    return lambda chat: (
        f"{name} says \\boxed{{5}}" if chat[-1]["content"].startswith("[fuse]") else f"{name} idea"
    )


@settings(max_examples=15, deadline=None)
@given(episodes=st.integers(1, 6), agents=st.integers(1, 4))
def test_one_generate_call_per_stage_and_agent(episodes: int, agents: int) -> None:
    policies = [ScriptedPolicy(speaker(f"p{i}")) for i in range(agents)]
    records = run_episodes(lambda: FakeEnv(agents), policies, num_episodes=episodes, seeds=0)
    assert [p.calls for p in policies] == [3] * agents  # 3·m calls in total, not 3·m·E
    assert all(len(batch) == episodes for p in policies for batch in p.chats_seen)
    assert len(records) == episodes and all(len(r.stages) == 3 for r in records)


def test_shared_policy_object_is_called_once_per_stage_for_all_agents() -> None:
    shared = ScriptedPolicy(speaker("s"))
    run_episodes(lambda: FakeEnv(3), [shared, shared, shared], num_episodes=4)
    assert shared.calls == 3 and [len(b) for b in shared.chats_seen] == [12, 12, 12]


def test_final_stage_sampled_n_times_scored_and_first_is_the_action() -> None:
    answers = ScriptedPolicy(["idea"] * 4 + ["wrong", "\\boxed{5}", "\\boxed{5}", "nope", "x", "y"])
    envs = [FakeEnv(1), FakeEnv(1)]
    records = run_episodes(envs, {"agent_0": answers}, question_ids=["a", "b"], final_n=3)
    first, second = records
    assert [s.text for s in first.final_samples["agent_0"]] == ["wrong", "\\boxed{5}", "\\boxed{5}"]
    assert [s.reward for s in first.final_samples["agent_0"]] == [0.0, 1.0, 1.0]
    assert first.final_samples["agent_0"][1].grade.correct is True
    assert first.rewards == {"agent_0": 0.0}  # the env graded the first sample
    assert second.final_answer("agent_0") == "nope" and not second.correct("agent_0")
    assert first.question["id"] == "a" and second.question["id"] == "b"
    # n applies to the final stage only
    assert [len(b) for b in answers.chats_seen] == [2, 2, 2]


def test_peer_messages_reach_later_prompts_and_records_are_json(tmp_path: Path) -> None:
    records = run_episodes(
        lambda: FakeEnv(2),
        [ScriptedPolicy(speaker("A")), ScriptedPolicy(speaker("B"))],
        num_episodes=2,
        seeds=[5, 6],
    )
    stage = records[0].stages[1]
    assert stage.stage == "analyse" and "B idea" in stage.seen["agent_0"][0]["content"]
    assert stage.said["agent_1"].text == "B idea"
    path = write_jsonl(records, tmp_path / "sub" / "t.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert (
        len(lines) == 2 and lines[1]["seed"] == 6 and lines[0]["rewards"] == {"agent_0": 1.0, "agent_1": 1.0}
    )
    assert lines[0]["final_samples"]["agent_0"][0]["grade"]["extracted"] == "5"
    # the transcript layout: stage entries hold what each agent saw and said, samples their grade
    assert lines[0]["stages"][1]["agents"]["agent_1"]["message"] == "B idea"
    assert lines[0]["stages"][1]["agents"]["agent_0"]["messages"] == stage.seen["agent_0"]
    assert lines[0]["final_samples"]["agent_0"][0]["text"] == records[0].final_answer("agent_0")


def test_modes_override_and_seeded_params_reach_env_and_policy() -> None:
    seen: list[SamplingParams] = []

    class Recorder(ScriptedPolicy):
        def generate(self, chats, params):
            seen.append(params)
            return super().generate(chats, params)

    env = FakeEnv(1)
    run_episodes(
        [env],
        [Recorder(["x"])],
        modes={"agent_0": "compete"},
        params=SamplingParams(seed=7, temperature=0.3),
        final_n=2,
    )
    assert env.options == {"modes": {"agent_0": "compete"}}
    assert [p.seed for p in seen] == [7, 8, 9] and [p.n for p in seen] == [1, 1, 2]
    assert all(p.temperature == 0.3 for p in seen)


def test_modes_override_ignored_by_the_env_is_an_error() -> None:
    class Deaf(FakeEnv):
        def reset(self, seed=None, options=None):
            return super().reset(seed, {k: v for k, v in (options or {}).items() if k != "modes"})

    with pytest.raises(RolloutError, match="ignored the per-agent modes"):
        run_episodes([Deaf(1)], [ScriptedPolicy(["x"])], modes={"agent_0": "compete"})


def test_token_fields_are_recorded_when_the_policy_gives_them() -> None:
    from ilr_agents.policies import TransformersPolicy

    policy = TransformersPolicy("tiny")
    records = run_episodes(
        lambda: FakeEnv(1),
        [policy],
        num_episodes=2,
        final_n=2,
        params=SamplingParams(max_new_tokens=4, seed=0),
    )
    sample = records[0].final_samples["agent_0"][1]
    assert len(sample.completion_ids) == len(sample.logprobs) > 0 and sample.prompt_ids
    json.dumps(records[1].to_dict())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_episodes": 2, "question_ids": ["a"]}, "question_ids"),
        ({"final_n": 0}, "final_n"),
    ],
)
def test_inconsistent_arguments_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(RolloutError, match=match):
        run_episodes(lambda: FakeEnv(1), [ScriptedPolicy(["x"])], **{"num_episodes": 1, **kwargs})


def test_policy_count_and_env_reuse_are_checked() -> None:
    with pytest.raises(RolloutError, match="one per agent"):
        run_episodes([FakeEnv(2)], [ScriptedPolicy(["x"])])
    env = FakeEnv(1)
    with pytest.raises(RolloutError, match="twice"):
        run_episodes([env, env], [ScriptedPolicy(["x"])])
    with pytest.raises(RolloutError, match="num_episodes"):
        run_episodes(lambda: FakeEnv(1), [ScriptedPolicy(["x"])])


# ---- the real environment ---------------------------------------------------------------------------


def real_env_factory(num_agents: int, protocol: str = "idea3"):
    import ilr_env

    questions = ilr_env.load_questions("math500", limit=3)
    return (
        lambda: ilr_env.make("math500", num_agents=num_agents, protocol=protocol, questions=questions)
    ), questions


@pytest.mark.parametrize("agents", [2, 3])
def test_real_env_idea3_makes_three_calls_per_agent(agents: int) -> None:
    factory, questions = real_env_factory(agents)
    policies = [
        ScriptedPolicy(lambda chat, i=i: f"agent {i}: x = 2, so \\boxed{{{i}}}") for i in range(agents)
    ]
    records = run_episodes(factory, policies, question_ids=[q.id for q in questions], final_n=2)
    assert [p.calls for p in policies] == [3] * agents
    assert [r.stage for r in records[0].stages] == ["share", "analyse", "fuse"]
    assert all(isinstance(r, EpisodeRecord) and len(r.final_samples["agent_0"]) == 2 for r in records)
    analyse_prompt = json.dumps(records[0].stages[1].seen["agent_0"])
    assert "agent 1: x = 2" in analyse_prompt  # the peer's shared idea reaches the next stage
    assert set(records[0].rewards) == {f"agent_{i}" for i in range(agents)}


@pytest.mark.parametrize("agents", [2, 3])
def test_alternating_turns_keep_one_call_per_agent_and_turn(agents: int) -> None:
    """A, B, A, B, A, B: each agent writes once per stage, batched over every episode, and sees what the
    agents before it wrote in the same stage."""
    import ilr_env

    questions = ilr_env.load_questions("math500", limit=3)

    def factory():
        return ilr_env.make(
            "math500", num_agents=agents, questions=questions, mode="compete", turn_order="alternating"
        )

    policies = [
        ScriptedPolicy(lambda chat, i=i: f"agent {i} wrote \\boxed{{{i}}}", name=f"p{i}")
        for i in range(agents)
    ]
    records = run_episodes(factory, policies, question_ids=[q.id for q in questions], final_n=2)
    assert [p.calls for p in policies] == [3] * agents
    assert all(len(chats) == len(questions) for p in policies for chats in p.chats_seen)
    r = records[0]
    assert [(st.stage, list(st.said)) for st in r.stages] == [
        (stage, [f"agent_{i}"]) for stage in STAGES for i in range(agents)
    ]
    last = f"agent_{agents - 1}"
    fuse_prompt = r.stages[-1].seen[last][-1]["content"]
    first_fuse = r.stages[-agents].seen["agent_0"][-1]["content"]
    assert "Already written at this stage" in fuse_prompt and "Already written" not in first_fuse
    assert all(len(r.final_samples[f"agent_{i}"]) == 2 for i in range(agents))
    assert r.final_answer("agent_0") in fuse_prompt  # the first fusion is what later agents see
    assert r.correct(last) is (questions[0].answer == str(agents - 1))
