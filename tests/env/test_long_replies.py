"""A correct reply longer than the relay limit is graded whole, on every path that grades.

``max_message_chars`` (default 4,000) only bounds what peers are shown; ``env.score``, the final step,
evaluation (what ``ilr eval`` runs), the joint ILR rollout and the baseline's reward all grade the full
reply, so a long chain of thought that ends in a correct box scores 1.
"""

from __future__ import annotations

import ilr_env
from ilr_agents.config import ILRConfig
from ilr_agents.evaluation import evaluate_alone, evaluate_together
from ilr_agents.ilr_step import ilr_step
from ilr_agents.policies import SamplingParams, ScriptedPolicy
from ilr_agents.policies.base import Completion
from ilr_agents.rewards import RawReward, TRLRawReward, question_column
from ilr_env.tasks.base import Question

QUESTIONS = [
    Question(id=f"long/{i}", prompt=f"What is {i} + {i}?", answer=str(2 * i), task="long", kind="math")
    for i in range(1, 4)
]
RELAY_LIMIT = 4000


def long_reply(chat: list[dict[str, str]]) -> str:
    """Over 5,000 characters of working, then the correct box (read off the question in the prompt)."""
    for q in QUESTIONS:
        if q.prompt in chat[-1]["content"]:
            return "Let me think about this carefully. " * 160 + f"So the answer is \\boxed{{{q.answer}}}."
    return "Let me think about this carefully. " * 160  # an earlier discussion stage


def test_the_reply_is_longer_than_the_relay_limit() -> None:
    text = long_reply([{"role": "user", "content": QUESTIONS[0].prompt}])
    assert len(text) > 5000 and "\\boxed" not in text[:RELAY_LIMIT]


def make_env(protocol: str = "idea3") -> ilr_env.ILRParallelEnv:
    return ilr_env.make(
        "long",
        questions=QUESTIONS,
        num_agents=1 if protocol == "single" else 2,
        protocol=protocol,
        mode="cooperate",
        max_message_chars=RELAY_LIMIT,
    )


def test_env_score_and_final_step_grade_the_whole_reply() -> None:
    env = make_env()
    env.reset(seed=0, options={"question_id": "long/2"})
    text = long_reply([{"role": "user", "content": QUESTIONS[1].prompt}])
    reward, grade = env.score("agent_0", text)
    assert grade.correct and reward == 1.0
    while env.agents:
        _, rewards, *_ = env.step(dict.fromkeys(env.agents, text))
    assert rewards == {"agent_0": 1.0, "agent_1": 1.0}


def test_evaluation_alone_and_in_discussion_grades_the_whole_reply() -> None:
    params = SamplingParams(max_new_tokens=8)
    alone = evaluate_alone(ScriptedPolicy(long_reply), QUESTIONS, params, task="long", env_kwargs={})
    assert [row["correct"] for row in alone.per_question] == [True] * len(QUESTIONS)
    policies = {"agent_0": ScriptedPolicy(long_reply), "agent_1": ScriptedPolicy(long_reply)}
    together = evaluate_together(policies, QUESTIONS, params, task="long", env_kwargs={"mode": "cooperate"})
    assert all(row[a]["correct"] for row in together.per_question for a in policies)
    peer_view = together.records[0].stages[-1].seen["agent_0"][-1]["content"]
    assert "more characters not shown" in peer_view  # peers were shown the cut text


class _TokenisedScript(ScriptedPolicy):
    """The scripted replies with placeholder token ids, as the joint rollout's trainers need."""

    def generate(self, chats: list, params: SamplingParams) -> list[list[Completion]]:
        return [
            [Completion(c.text, prompt_ids=[1], completion_ids=[2], logprobs=[0.0]) for c in group]
            for group in super().generate(chats, params)
        ]


def test_joint_rollout_grades_the_whole_reply() -> None:
    config = ILRConfig(
        models=["tiny", "tiny"], task="long", num_generations=2, per_device_train_batch_size=2, max_steps=1
    )
    agents = ["agent_0", "agent_1"]
    envs = [make_env() for _ in QUESTIONS]
    policies = {a: _TokenisedScript(long_reply, name=a) for a in agents}
    result = ilr_step(1, QUESTIONS, envs, policies, RawReward.from_config(config), config)
    for agent in agents:
        assert all(all(piece.correct) and piece.raw == [1.0, 1.0] for piece in result.slices[agent]), agent


def test_baseline_reward_grades_the_whole_reply() -> None:
    """The single-agent GRPO baseline's TRL reward function, built as the baseline builds it."""
    config = ILRConfig(models=["tiny"], task="long", method="grpo")
    reward = TRLRawReward(RawReward.from_config(config), eos_token_ids=[0])
    texts = [long_reply([{"role": "user", "content": q.prompt}]) for q in QUESTIONS]
    scores = reward(
        [q.prompt for q in QUESTIONS],
        [[{"role": "assistant", "content": t}] for t in texts],
        question_json=[question_column(q) for q in QUESTIONS],
    )
    assert scores == [1.0] * len(QUESTIONS)
