"""Protocols as objects: a new one plugs in without touching the env, and alternating turns can rotate."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pettingzoo.test import parallel_api_test, parallel_seed_test

import ilr_env
from ilr_env.errors import ILRConfigError
from ilr_env.protocols import (
    PromptError,
    Protocol,
    StageView,
    get_protocol,
    load_prompts,
    protocol_names,
    register_protocol,
    unregister_protocol,
)
from ilr_env.protocols.prompts import STAGE, PromptSet, Schema
from ilr_env.tasks import Question


class ProposeAnswer(Protocol):
    """A toy two-stage protocol: everyone proposes a plan, then answers having read every plan."""

    name = "propose-answer"
    schema: ClassVar[Schema] = {
        ("propose-answer", "propose"): (STAGE, frozenset({"question"})),
        ("propose-answer", "answer"): (STAGE | {"plans"}, frozenset({"question", "plans"})),
    }
    templates: ClassVar[dict[str, str]] = {
        "propose": "You are {agent}, with {peers}. Propose a plan for: {question}",
        "answer": "{question}\n\nEvery plan:\n{plans}\n\nNow answer. {answer_format}",
    }

    def stages(self, rounds: int) -> tuple[str, ...]:
        return ("propose", "answer")

    def template_path(self, stage_index: int, mode: str | None) -> tuple[str, ...]:
        return (self.name, self.stages(0)[stage_index])

    def stage_fields(self, prompts: PromptSet, view: StageView) -> dict[str, object]:
        if view.stage_index == 0:
            return {}
        return {"plans": self.quote(prompts, view.agents, view.shown[0])}


@pytest.fixture
def toy_protocol():
    proto = register_protocol(ProposeAnswer())
    yield proto
    unregister_protocol(proto.name)


def questions(n: int = 4) -> list[Question]:
    return [
        Question(id=f"t/{i}", prompt=f"What is {i} + 1?", answer=str(i + 1), task="toy", kind="math")
        for i in range(n)
    ]


def test_a_registered_toy_protocol_runs_through_make_and_passes_pettingzoo(toy_protocol) -> None:
    env = ilr_env.make("toy", questions=questions(), num_agents=3, protocol="propose-answer", mode=0.5)
    assert env.stages == ("propose", "answer")
    obs, infos = env.reset(seed=3)
    assert "Propose a plan for: What is" in obs["agent_0"] and "with agent_1 and agent_2" in obs["agent_0"]
    obs, *_ = env.step({a: f"plan of {a}" for a in env.agents})
    for a in ("agent_0", "agent_1", "agent_2"):
        assert all(f"[{b}]\nplan of {b}" in obs[a] for b in ("agent_0", "agent_1", "agent_2"))
        assert infos[a]["mode"] in ("cooperate", "compete")
    _, rewards, terms, _, infos = env.step({a: "\\boxed{1}" for a in env.agents})
    assert all(terms.values()) and not env.agents
    question = next(q for q in questions() if q.id == infos["agent_0"]["question_id"])
    assert rewards["agent_0"] == (1.0 if question.answer == "1" else 0.0)
    assert load_prompts().version.startswith("ilr-prompts-v1+propose-answer-")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"reset ignores unknown options")
        warnings.filterwarnings("ignore", message="Observation is not a NumPy array")
        warnings.filterwarnings("ignore", message=r"(Observation|Action) space for each agent probably")
        parallel_api_test(
            ilr_env.make("toy", questions=questions(), num_agents=2, protocol="propose-answer", mode=0.5),
            num_cycles=10,
        )
        parallel_seed_test(
            lambda: ilr_env.make(
                "toy", questions=questions(), num_agents=2, protocol="propose-answer", mode=0.5
            )
        )


def test_a_toy_protocols_templates_are_checked_and_overridable(toy_protocol) -> None:
    custom = {"propose-answer": {"answer": "{question} / {plans}"}}
    env = ilr_env.make(
        "toy", questions=questions(), protocol="propose-answer", mode="compete", prompts=custom
    )
    env.reset(seed=0)
    obs, *_ = env.step({a: "p" for a in env.agents})
    assert re.search(r"What is \d \+ 1\? / \[agent_0\]\np\n\n\[agent_1\]\np$", obs["agent_1"])
    with pytest.raises(PromptError, match=re.escape("propose-answer.answer must contain {plans}")):
        load_prompts({"propose-answer": {"answer": "{question}"}})
    with pytest.raises(ILRConfigError, match="not defined for protocol='propose-answer'"):
        ilr_env.make("toy", questions=questions(), protocol="propose-answer", turn_order="alternating")


def test_protocol_registry_errors_name_the_fix(toy_protocol) -> None:
    assert "propose-answer" in protocol_names() and get_protocol("idea3").final_stage(2) == "fuse"
    assert get_protocol("debate").final_stage(3) == "round_2"
    with pytest.raises(ILRConfigError, match="already registered; pass overwrite=True"):
        register_protocol(ProposeAnswer())
    with pytest.raises(ILRConfigError, match=r"did you mean 'debate'\?"):
        ilr_env.make("toy", questions=questions(), protocol="debat")
    with pytest.raises(ILRConfigError, match="takes a Protocol instance"):
        register_protocol("idea3")  # type: ignore[arg-type]


def test_an_unregistered_protocol_is_gone_and_prompts_lose_its_section() -> None:
    register_protocol(ProposeAnswer())
    unregister_protocol("propose-answer")
    assert "propose-answer" not in protocol_names()
    assert "propose-answer" not in load_prompts().tree
    with pytest.raises(ILRConfigError, match="protocol must be one of"):
        ilr_env.make("toy", questions=questions(), protocol="propose-answer")


# ------------------------------------------------------------------------------ first speaker


def openers(env, seeds) -> list[str]:
    """Who writes first in each seeded episode (alternating turns: the acting agent at reset)."""
    out = []
    for seed in seeds:
        _, infos = env.reset(seed=seed)
        out += [a for a in infos if infos[a]["acting"]]
    return out


def test_fixed_first_speaker_is_always_agent_0() -> None:
    env = ilr_env.make("toy", questions=questions(), num_agents=3, mode=0.5, turn_order="alternating")
    assert set(openers(env, range(20))) == {"agent_0"}


def test_rotating_first_speaker_is_seeded_balanced_and_keeps_the_cyclic_order() -> None:
    def make():
        return ilr_env.make(
            "toy",
            questions=questions(),
            num_agents=3,
            mode=0.5,
            turn_order="alternating",
            first_speaker="rotate",
        )

    first = openers(make(), range(300))
    assert first == openers(make(), range(300))  # deterministic from the seed
    counts = Counter(first)
    assert set(counts) == {"agent_0", "agent_1", "agent_2"} and min(counts.values()) > 70
    env = make()
    seed = next(s for s in range(50) if openers(env, [s]) == ["agent_1"])
    _, infos = env.reset(seed=seed)
    order = []
    while env.agents:
        acting = [a for a in infos if infos[a]["acting"]]
        order += acting
        _, _, _, _, infos = env.step({a: f"msg of {acting[0]}" for a in env.agents})
    assert order == ["agent_1", "agent_2", "agent_0"] * 3
    fuse_of_agent_0 = env.final_prompt("agent_0")[-1]["content"]
    assert "[agent_1]\nmsg of agent_1\n\n[agent_2]\nmsg of agent_2" in fuse_of_agent_0  # it speaks last
    assert "Already written" not in env.final_prompt("agent_1")[-1]["content"]  # it opens the stage


def test_rotation_leaves_question_and_mode_draws_as_with_a_fixed_first_speaker() -> None:
    def draws(first_speaker: str) -> list[tuple[str, list[str]]]:
        env = ilr_env.make(
            "toy",
            questions=questions(),
            num_agents=2,
            mode=0.5,
            turn_order="alternating",
            first_speaker=first_speaker,
        )
        out = []
        for seed in range(10):
            _, infos = env.reset(seed=seed)
            out.append((infos["agent_0"]["question_id"], [infos[a]["mode"] for a in infos]))
        return out

    assert draws("rotate") == draws("fixed")


def test_first_speaker_errors() -> None:
    with pytest.raises(ILRConfigError, match=re.escape("first_speaker must be one of ['fixed', 'rotate']")):
        ilr_env.make("toy", questions=questions(), turn_order="alternating", first_speaker="random")
    with pytest.raises(ILRConfigError, match="use turn_order='alternating' or first_speaker='fixed'"):
        ilr_env.make("toy", questions=questions(), first_speaker="rotate")


def test_rotating_env_passes_pettingzoo_seed_test() -> None:
    parallel_seed_test(
        lambda: ilr_env.make(
            "toy",
            questions=questions(),
            num_agents=3,
            mode=0.5,
            turn_order="alternating",
            first_speaker="rotate",
        )
    )


def test_reset_option_first_speaker_opens_every_stage_and_leaves_the_draws_alone() -> None:
    env = ilr_env.make("toy", questions=questions(), num_agents=3, mode=0.5, turn_order="alternating")
    plain = [
        (i["agent_0"]["question_id"], i["agent_0"]["mode"]) for i in (env.reset(seed=s)[1] for s in range(8))
    ]
    opened = []
    for s in range(8):
        _, infos = env.reset(seed=s, options={"first_speaker": "agent_2"})
        opened.append((infos["agent_0"]["question_id"], infos["agent_0"]["mode"]))
        order = []
        while env.agents:
            order += [a for a in infos if infos[a]["acting"]]
            *_, infos = env.step({a: "x" for a in env.agents})
        assert order == ["agent_2", "agent_0", "agent_1"] * 3
    assert opened == plain
    assert openers(env, [0]) == ["agent_0"]  # an override lasts one episode
    with pytest.raises(ilr_env.ILREnvError, match="unknown agent 'agent_7'"):
        env.reset(seed=0, options={"first_speaker": "agent_7"})
    simultaneous = ilr_env.make("toy", questions=questions(), mode=0.5)
    with pytest.raises(ilr_env.ILREnvError, match="orders alternating turns"):
        simultaneous.reset(seed=0, options={"first_speaker": "agent_1"})


@given(m=st.integers(1, 6), num_stages=st.integers(1, 5), first=st.integers(0, 20))
def test_turn_plans_give_everyone_one_turn_per_stage_in_cyclic_order(
    m: int, num_stages: int, first: int
) -> None:
    agents = ilr_env.agent_names(m)
    first %= m
    plan = get_protocol("idea3").turn_plan(agents, num_stages, "alternating", first)
    assert [k for k, _ in plan] == [k for k in range(num_stages) for _ in range(m)]
    for k in range(num_stages):
        assert [w for kk, (w,) in plan if kk == k] == agents[first:] + agents[:first]
    assert get_protocol("debate").turn_plan(agents, num_stages, "simultaneous", first) == [
        (k, tuple(agents)) for k in range(num_stages)
    ]
