"""An abilities file given to `ilr train` is matched to agents by key (agent or model name), not by order."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.preparation import prepare_difficulty_and_abilities
from ilr_env import difficulty as dif
from ilr_env.tasks import Question


def _questions(n: int) -> list[Question]:
    return [Question(id=f"toy/{i}", prompt=f"{i} + 1?", answer=str(i + 1), task="toy") for i in range(n)]


def _prepare(tmp_path: Path, models: list[str], abilities: object) -> list[float]:
    questions = _questions(4)
    d_file = tmp_path / "d.json"
    d_file.write_text(json.dumps({q.id: 0.0 for q in questions}))
    a_file = tmp_path / "a.json"
    if isinstance(abilities, dif.Estimates):
        dif.save_json(abilities, a_file)
    else:
        a_file.write_text(json.dumps(abilities))
    config = ILRConfig(
        models=models,
        difficulty=str(d_file),
        abilities=str(a_file),
        output_dir=str(tmp_path / "run"),
        report_to=["none"],
    )
    return prepare_difficulty_and_abilities(config, questions, questions[:2]).abilities


def test_estimates_file_with_eleven_agents_keeps_each_agents_value(tmp_path):
    agents = [f"agent_{i}" for i in range(11)]
    est = dif.Estimates("ability", {a: i / 10 for i, a in enumerate(agents)})
    got = _prepare(tmp_path, ["tiny"] * 11, est)
    assert got == [i / 10 for i in range(11)]  # sorted keys would give agent_10's value to agent_2


def test_file_keyed_by_model_name(tmp_path):
    got = _prepare(tmp_path, ["org/b", "org/a", "org/b"], {"org/a": 0.25, "org/b": -1.0})
    assert got == [-1.0, 0.25, -1.0]


def test_unknown_key_in_the_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("unknown key(s) ['org/c']")):
        _prepare(tmp_path, ["org/a", "org/b"], {"org/a": 0.0, "org/b": 1.0, "org/c": 2.0})
