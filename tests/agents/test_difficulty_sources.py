"""Difficulty and ability files: one reader for training's config and for `ilr eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_agents.config import ConfigError
from ilr_agents.difficulty_sources import read_abilities, read_difficulty
from ilr_env import difficulty as dif

AGENTS = ["agent_0", "agent_1"]


def test_every_difficulty_format_gives_the_same_values(tmp_path: Path) -> None:
    values = {"q1": 0.5, "q2": -1.0}
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(values))
    est = dif.save_json(dif.Estimates("difficulty", values), tmp_path / "est.json")
    per_model = {"a": {"values": {"q1": 1.0}}, "b": {"values": {"q1": -1.0}}}
    ranked = dif.save_json(
        dif.Estimates("difficulty", {"q1": 0.0}, {"method": "self_rank_agents", "per_model": per_model}),
        tmp_path / "ranked.json",
    )
    assert read_difficulty(plain, AGENTS, ["a", "b"]) == read_difficulty(est, AGENTS, ["a", "b"]) == values
    assert read_difficulty(ranked, AGENTS, ["b", "a"]) == {"agent_0": {"q1": -1.0}, "agent_1": {"q1": 1.0}}
    assert read_difficulty(ranked, AGENTS, ["b", "a"], shared=True) == {"q1": 0.0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ('["q1"]', "JSON object of question id"),
        ('{"q1": "hard"}', "must be a number"),
    ],
)
def test_a_bad_difficulty_file_is_one_config_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "d.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_difficulty(path, AGENTS, ["a", "b"])


@settings(max_examples=30, deadline=None)
@given(gammas=st.lists(st.floats(-6, 6), min_size=2, max_size=4), reverse=st.booleans())
def test_abilities_are_matched_by_key_in_every_format(
    tmp_path_factory, gammas: list[float], reverse: bool
) -> None:
    agents = [f"agent_{i}" for i in range(len(gammas))]
    models = [f"m{i}" for i in range(len(gammas))]
    folder = tmp_path_factory.mktemp("abilities")
    keyed = dict(zip(models, gammas, strict=True))
    files = {
        "list": gammas,
        "wrapped": {"abilities": gammas},
        "by_agent": dict(reversed(list(zip(agents, gammas))) if reverse else zip(agents, gammas)),
        "by_model": dict(reversed(list(keyed.items()))) if reverse else keyed,
    }
    for name, content in files.items():
        (folder / f"{name}.json").write_text(json.dumps(content))
        assert read_abilities(folder / f"{name}.json", agents, models) == pytest.approx(gammas), name


def test_abilities_for_another_run_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"m0": 0.0, "other": 1.0}))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['other'\]"):
        read_abilities(path, AGENTS, ["m0", "m1"])
    path.write_text(json.dumps([0.0]))
    with pytest.raises(ConfigError, match="1 values for 2 agents"):
        read_abilities(path, AGENTS, ["m0", "m1"])
