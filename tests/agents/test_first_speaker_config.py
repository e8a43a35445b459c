"""ILRConfig's first_speaker reaches the env's choice, and fails fast where it could change nothing."""

from __future__ import annotations

import pytest

import ilr_env
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.policies import ScriptedPolicy
from ilr_agents.rollout import run_episodes
from ilr_env.tasks import Question


def test_first_speaker_defaults_to_fixed_and_rotate_needs_alternating_turns() -> None:
    assert ILRConfig().first_speaker == "fixed"
    assert ILRConfig(turn_order="alternating", first_speaker="rotate").first_speaker == "rotate"
    with pytest.raises(ConfigError, match="first_speaker='rotate' orders alternating turns"):
        ILRConfig(first_speaker="rotate")
    with pytest.raises(ConfigError, match="first_speaker"):
        ILRConfig(turn_order="alternating", first_speaker="random")


def test_final_stage_comes_from_the_protocol_object() -> None:
    assert ILRConfig().final_stage == "fuse"
    assert ILRConfig(protocol="debate", debate_rounds=4).final_stage == "round_3"


def test_per_episode_rotation_splits_each_turns_batch_across_the_policies() -> None:
    """Lockstep rollouts make one policy call per (turn, policy): openers that differ across the episodes
    of a batch make every policy write at every turn (twice the sequential calls with 2 agents), where one
    opener for the whole batch keeps one call per agent turn. This is the price of "rotate"."""
    qs = [Question(id=f"q{i}", prompt=f"{i}+1?", answer=str(i + 1), task="t", kind="math") for i in range(8)]

    def calls(first_speaker: str) -> list[int]:
        policies = [ScriptedPolicy(lambda chat, i=i: f"p{i} \\boxed{{1}}", name=f"p{i}") for i in range(2)]

        def factory():
            return ilr_env.make(
                "t", questions=qs, mode=0.5, turn_order="alternating", first_speaker=first_speaker
            )

        run_episodes(factory, policies, num_episodes=8, seeds=0)
        return [p.calls for p in policies]

    assert calls("fixed") == [3, 3]
    assert calls("rotate") == [6, 6]  # both openers occur among 8 seeded episodes
