"""One ILR step as a plain function, and the rendezvous its TRL adapter uses, without TRL or threads' luck."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ilr_env
from ilr_agents.calibration import calibrate
from ilr_agents.config import ILRConfig
from ilr_agents.ilr_step import ilr_step
from ilr_agents.policies import Completion, SamplingParams, ScriptedPolicy
from ilr_agents.rendezvous import Rendezvous, RendezvousError
from ilr_agents.rewards import RawReward
from ilr_env import Question

QUESTIONS = [
    Question(id=f"q{i}", prompt=f"What is {i} + 1?", answer=str(i + 1), task="toy") for i in range(3)
]


class Tokens(ScriptedPolicy):
    """Scripted replies with token fields, as a trained policy gives them."""

    def generate(self, chats: list, params: SamplingParams) -> list[list[Completion]]:
        return [
            [Completion(c.text, prompt_ids=[1], completion_ids=[2, 3], logprobs=[0.0, 0.0]) for c in group]
            for group in super().generate(chats, params)
        ]


def answers(*texts: str):
    """A script that cycles through ``texts`` at the final stage and talks before it."""
    state = {"k": 0}

    def reply(chat: list) -> str:
        if "final answer within" not in chat[-1]["content"]:
            return "an idea"
        state["k"] += 1
        return texts[state["k"] % len(texts)]

    return reply


@settings(max_examples=8, deadline=None)
@given(n=st.integers(2, 4), bonus=st.sampled_from([0.0, 0.25]))
def test_one_step_rewards_every_final_sample_and_calibrates_whole_groups(n: int, bonus: float) -> None:
    config = ILRConfig(
        models=["a", "b"],
        task="toy",
        num_generations=n,
        per_device_train_batch_size=3 * n,
        format_reward=bonus,
    )
    envs = [ilr_env.make("gsm8k", num_agents=2, questions=QUESTIONS, mode="cooperate") for _ in QUESTIONS]
    policies = {
        "agent_0": Tokens(answers("\\boxed{1}", "\\boxed{2}", "no idea"), name="agent_0"),
        "agent_1": Tokens(answers("\\boxed{3}", "7"), name="agent_1"),
    }
    result = ilr_step(1, QUESTIONS, envs, policies, RawReward(format_bonus=bonus), config)

    assert result.raw.shape == (3, 2, n)
    assert result.raw.max() >= 1.0 and result.raw.min() == 0.0  # some replies right, some wrong
    np.testing.assert_allclose(result.calibrated, calibrate(result.raw))
    for qi, episodes in enumerate(result.episodes):
        assert [e.question["id"] for e in episodes] == [QUESTIONS[qi].id]
        for ai, agent in enumerate(result.agents):
            samples = episodes[0].final_samples[agent]
            assert [s.reward for s in samples] == list(result.raw[qi, ai])
            assert [s.calibrated_reward for s in samples] == list(result.calibrated[qi, ai])
            # the raw reward is the grade the env gave plus the one format term
            assert [s.reward for s in samples] == [s.grade.reward + bonus * s.grade.has_box for s in samples]
            line = episodes[0].to_dict(tokens=False)["final_samples"][agent]
            assert all({"reward", "calibrated_reward", "grade"} <= set(d) for d in line)
            assert all("completion_ids" not in d for d in line)
    for agent in result.agents:
        columns = result.trl_columns(agent)
        assert {len(v) for v in columns.values()} == {3 * n}
        assert columns["completion_ids"][0] == [2, 3]
    rows = result.agent_rows()
    assert all(sum(r["mode_counts"].values()) == 3 for r in rows.values())


def test_calibration_off_keeps_the_raw_rewards() -> None:
    config = ILRConfig(
        models=["a", "b"], task="toy", num_generations=2, per_device_train_batch_size=2, calibration=False
    )
    envs = [ilr_env.make("gsm8k", num_agents=2, questions=QUESTIONS, mode="cooperate")]
    policies = {a: Tokens(answers("\\boxed{1}", "x"), name=a) for a in ("agent_0", "agent_1")}
    result = ilr_step(1, QUESTIONS[:1], envs, policies, RawReward(), config)
    assert (result.calibrated == result.raw).all() and result.shift == {}


def test_threads_take_turns_and_one_works_for_all() -> None:
    names = ["agent_0", "agent_1", "agent_2"]
    meeting = Rendezvous(names, timeout=30)
    order: list[str] = []
    got: dict[str, object] = {}

    def run(name: str) -> None:
        meeting.wait_turn(name)
        order.append(name)
        got[name] = meeting.meet(name, name.upper(), lambda values: sorted(values.values()))
        order.append(name)
        meeting.pass_turn()

    threads = [threading.Thread(target=run, args=(n,)) for n in reversed(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert order == names + names  # turn order on the way in and on the way out
    assert got == {name: ["AGENT_0", "AGENT_1", "AGENT_2"] for name in names}


def test_abort_stops_every_waiting_thread() -> None:
    meeting = Rendezvous(["agent_0", "agent_1"], timeout=30)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            meeting.wait_turn("agent_1")
        except RendezvousError as exc:
            errors.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    meeting.abort()
    t.join(30)
    assert len(errors) == 1 and "peer" in str(errors[0])
    with pytest.raises(RendezvousError):
        meeting.meet("agent_0", 1, lambda values: values)
