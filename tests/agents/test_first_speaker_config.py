"""ILRConfig's first_speaker reaches the env's choice, and fails fast where it could change nothing."""

from __future__ import annotations

import pytest

from ilr_agents.config import ConfigError, ILRConfig


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
