"""Every prompt an agent reads speaks its own mode: a competing agent is never told to share with
"teammates", a cooperating one never hears of "rivals", in the system message and in every stage's user
prompt, whatever the peers' modes. Only the public env API is used (make, reset, step, observations)."""

from __future__ import annotations

import pytest

import ilr_env
from ilr_env.tasks import Question

COOPERATIVE = ("teammate",)
COMPETITIVE = ("rival",)


def _questions() -> list[Question]:
    return [
        Question(id=f"toy/{i}", prompt=f"What is {i} + 2?", answer=str(i + 2), task="toy", kind="math")
        for i in range(3)
    ]


def _words(mode: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(words this mode's prompts must contain, words they must not)."""
    return (COOPERATIVE, COMPETITIVE) if mode == "cooperate" else (COMPETITIVE, COOPERATIVE)


def _play(env, options):
    """Every (agent, stage, system text, user text, observation) the episode shows, with neutral replies."""
    seen = []
    obs, infos = env.reset(seed=0, options=options)
    while env.agents:
        for agent in env.agents:
            messages = infos[agent]["messages"]
            assert [m["role"] for m in messages] == ["system", "user"]
            seen.append(
                (agent, infos[agent]["stage"], messages[0]["content"], messages[1]["content"], obs[agent])
            )
        actions = {a: f"{a} thinks the sum is 4. \\boxed{{4}}" for a in env.agents}
        obs, _, _, _, infos = env.step(actions)
    return seen


MIXES = [
    {"agent_0": "cooperate", "agent_1": "compete"},
    {"agent_0": "compete", "agent_1": "cooperate"},
    {"agent_0": "compete", "agent_1": "compete"},
    {"agent_0": "cooperate", "agent_1": "cooperate", "agent_2": "compete"},
    {"agent_0": "compete", "agent_1": "cooperate", "agent_2": "compete"},
]


@pytest.mark.parametrize("turn_order", ["simultaneous", "alternating"])
@pytest.mark.parametrize("modes", MIXES, ids=lambda m: "-".join(v[:4] for v in m.values()))
def test_idea3_stage_prompts_follow_each_agents_own_mode(modes, turn_order):
    env = ilr_env.make("toy", questions=_questions(), num_agents=len(modes), mode=0.5, turn_order=turn_order)
    seen = _play(env, {"modes": modes})
    assert {stage for _, stage, *_ in seen} == {"share", "analyse", "fuse"}
    for agent, stage, system, user, obs in seen:
        must, must_not = _words(modes[agent])
        where = f"{agent} ({modes[agent]}) at {stage}"
        for text, part in ((system, "system message"), (user, "user prompt")):
            assert any(w in text.lower() for w in must), f"{where}: {part} lacks {must}: {text!r}"
            assert not any(w in text.lower() for w in must_not), f"{where}: {part} says {must_not}: {text!r}"
        assert system in obs and user in obs, f"{where}: the observation is not the chat it reports"


@pytest.mark.parametrize("fixed", ["cooperate", "compete"])
def test_idea3_fixed_mode_wording_names_the_stage_and_the_relation(fixed):
    seen = _play(ilr_env.make("toy", questions=_questions(), num_agents=2, mode=fixed), None)
    share = {agent: user for agent, stage, _, user, _ in seen if stage == "share"}
    for user in share.values():
        if fixed == "cooperate":
            assert "share your key ideas with your teammates" in user
        else:
            assert "Your rivals will scrutinise them" in user and "share" not in user.split("Stage 1")[1][:40]
    for agent, stage, _, user, _ in seen:
        if stage in ("analyse", "fuse"):
            peers = "teammates'" if fixed == "cooperate" else "rivals'"
            assert f"Your {peers} ideas:" in user, f"{agent} at {stage}: {user!r}"


@pytest.mark.parametrize("modes", MIXES[:3], ids=lambda m: "-".join(v[:4] for v in m.values()))
def test_debate_frames_by_system_message_and_keeps_user_prompts_neutral(modes):
    env = ilr_env.make("toy", questions=_questions(), num_agents=len(modes), protocol="debate", mode=0.5)
    seen = _play(env, {"modes": modes})
    assert len({stage for _, stage, *_ in seen}) >= 2  # the first round and at least one update round
    for agent, stage, system, user, _ in seen:
        must, must_not = _words(modes[agent])
        assert any(w in system.lower() for w in must), f"{agent} at {stage}: {system!r}"
        assert not any(w in system.lower() for w in must_not), f"{agent} at {stage}: {system!r}"
        assert not any(w in user.lower() for w in COOPERATIVE + COMPETITIVE), f"{agent} at {stage}: {user!r}"
