"""Property tests: whatever a policy or caller sends, the env does what its docstring says."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ilr_env
from ilr_env.env import ILRActionTypeError, ILREnvError, ILRParallelEnv
from ilr_env.tasks import Question

LIMIT = 300
AGENTS = ["agent_0", "agent_1", "agent_2"]

QUESTIONS = [
    Question(id=f"fz/{i}", prompt=f"What is {i} + 1?", answer=str(i + 1), task="fz") for i in range(3)
]

# Any code point, lone surrogates and control characters included: what a broken decoder might emit.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=400)
fuzz = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fresh(protocol: str = "idea3") -> ILRParallelEnv:
    return ilr_env.make(
        "fz",
        questions=QUESTIONS,
        num_agents=3,
        protocol=protocol,
        mode=0.5,
        max_message_chars=LIMIT,
        format_reward=0.25,
    )


@fuzz
@given(
    st.lists(st.tuples(any_text, any_text, any_text), min_size=3, max_size=3),
    st.sampled_from(["idea3", "debate"]),
    st.integers(0, 2**32 - 1),
)
def test_any_unicode_actions_play_through(texts, protocol, seed):
    env = fresh(protocol)
    obs, infos = env.reset(seed=seed)
    rewards: dict[str, float] = {}
    stage = 0
    while env.agents:
        actions = dict(zip(env.agents, texts[stage], strict=True))
        obs, rewards, _, _, infos = env.step(actions)
        for a, o in obs.items():
            assert env.observation_space(a).contains(o)
        stage += 1
    assert set(rewards) == set(AGENTS)
    for a, text in zip(AGENTS, texts[stage - 1], strict=True):
        expected, grade = env.score(a, text)
        assert rewards[a] == expected and infos[a]["correct"] == grade.correct
        assert 0.0 <= rewards[a] <= 1.25


@fuzz
@given(st.sets(st.sampled_from([*AGENTS, "agent_3", "bob", ""]), max_size=5))
def test_action_dict_must_be_exactly_the_live_agents(keys):
    env = fresh()
    env.reset(seed=0)
    actions = dict.fromkeys(keys, "text")
    if keys == set(AGENTS):
        env.step(actions)
        return
    missing = sorted(set(AGENTS) - keys)
    with pytest.raises(ILREnvError) as err:
        env.step(actions)
    named = missing[0] if missing else min(keys - set(AGENTS))
    assert repr(named) in str(err.value)
    env.step(dict.fromkeys(AGENTS, "text"))  # the failed step changed nothing


@fuzz
@given(
    st.sampled_from(AGENTS),
    st.one_of(
        st.integers(),
        st.floats(),
        st.none(),
        st.binary(),
        st.lists(st.text()),
        st.dictionaries(st.text(), st.text()),
    ),
)
def test_non_string_actions_rejected_naming_the_agent(agent, bad):
    env = fresh()
    env.reset(seed=0)
    actions = dict.fromkeys(AGENTS, "ok")
    actions[agent] = bad
    with pytest.raises(ILRActionTypeError, match=f"action for {agent} must be a str"):
        env.step(actions)


@fuzz
@given(st.dictionaries(st.text(max_size=10), any_text, max_size=4))
def test_steps_after_the_end_always_raise(actions):
    env = fresh()
    env.reset(seed=1)
    while env.agents:
        env.step(dict.fromkeys(env.agents, "x"))
    with pytest.raises(ILREnvError, match=re.escape("call env.reset() to start a new one")):
        env.step(actions)


@fuzz
@given(st.integers(LIMIT + 1, 20 * LIMIT), st.characters(codec="utf-8", categories=["L", "N", "P"]))
def test_huge_messages_are_cut_with_a_marker(length, char):
    env = fresh()
    env.reset(seed=2)
    big = char * length
    obs, *_ = env.step({"agent_0": big, "agent_1": "a", "agent_2": "b"})
    marker = f"\n[... {length - LIMIT} more characters not shown]"
    for a in ("agent_1", "agent_2"):
        assert f"[agent_0]\n{char * LIMIT}{marker}" in obs[a]
        assert char * (LIMIT + 1) not in obs[a]
