"""Bad configuration fails at start, naming the field and the fix, before anything heavy is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_agents.config import ConfigError, ILRConfig

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_derived_values() -> None:
    cfg = ILRConfig()
    assert cfg.num_agents == 2 and cfg.questions_per_step == 2 and cfg.final_stage == "fuse"
    assert ILRConfig(protocol="debate", debate_rounds=3).final_stage == "round_2"


@pytest.mark.parametrize(
    ("overrides", "field", "fix"),
    [
        ({"num_generations": 1}, "num_generations", "set num_generations"),
        ({"per_device_train_batch_size": 6, "num_generations": 4}, "per_device_train_batch_size", "use 4"),
        ({"models": []}, "models", "at least one model"),
        ({"models": ["tiny"]}, "models", "method: grpo"),
        ({"learning_rate": 0.0}, "learning_rate", "must be > 0"),
        ({"learning_rate": -1e-5}, "learning_rate", "must be > 0"),
        ({"max_steps": 0}, "max_steps", ">= 1"),
        ({"temperature": 0.0}, "temperature", "> 0"),
        ({"cooperation_probability": 1.5}, "cooperation_probability", "[0, 1]"),
        ({"cooperation_probability": 0.5, "mode": "compete"}, "cooperation_probability", "not both"),
        ({"reward": "reward_model"}, "reward_model", "sequence-classification"),
        ({"report_to": ["tensorbored"]}, "report_to", "use tensorboard"),
        ({"train_stages": ["share"]}, "train_stages", "train_stages: [final]"),
        ({"abilities": [0.1]}, "abilities", "one per model"),
    ],
)
def test_impossible_values_name_field_and_fix(overrides: dict, field: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        ILRConfig.from_dict(overrides)
    assert field in str(info.value) and fix in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("num_generations", "4", "num_generations"),
        ("num_generations", 4.0, "num_generations"),
        ("calibration", "yes", "calibration"),
        ("learning_rate", "1e-5", "learning_rate"),
        ("models", "tiny", "models"),
        ("protocol", "idea4", "protocol"),
        ("use_cpu", 1, "use_cpu"),
    ],
)
def test_wrong_types_name_field_and_expected_type(key: str, value: object, field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field}=.*wrong type: expected"):
        ILRConfig.from_dict({key: value})


def test_ints_are_accepted_for_floats() -> None:
    cfg = ILRConfig.from_dict({"learning_rate": 1, "beta": 0})
    assert isinstance(cfg.learning_rate, float) and cfg.learning_rate == 1.0


def test_unknown_key_suggests_the_closest_field() -> None:
    with pytest.raises(
        ConfigError, match="unknown config key 'num_generation'.*did you mean 'num_generations'"
    ):
        ILRConfig.from_dict({"num_generation": 4})
    with pytest.raises(ConfigError, match="unknown config key 'zzz'"):
        ILRConfig.from_dict({"zzz": 1})


@given(st.text(min_size=1, max_size=20).filter(lambda k: k not in ILRConfig.__dataclass_fields__))
@settings(max_examples=50, deadline=None)
def test_any_unknown_key_is_rejected(key: str) -> None:
    with pytest.raises(ConfigError, match="unknown config key"):
        ILRConfig.from_dict({key: 1})


def test_yaml_round_trip_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"models": ["tiny", "tiny"], "num_generations": 2, "per_device_train_batch_size": 4})
    )
    cfg = ILRConfig.from_yaml(path, overrides={"max_steps": 3})
    assert cfg.models == ["tiny", "tiny"] and cfg.max_steps == 3
    again = tmp_path / "d.yaml"
    again.write_text(yaml.safe_dump(cfg.to_dict()))
    assert ILRConfig.from_yaml(again) == cfg
    with pytest.raises(ConfigError, match="does not exist"):
        ILRConfig.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        ILRConfig.from_yaml(tmp_path / "bad.yaml")


def test_cli_rejects_bad_config_before_importing_torch(tmp_path: Path) -> None:
    """`ilr train` validates first: a bad file fails in a process that never imported torch or a model."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"num_generations": 4, "per_device_train_batch_size": 6}))
    probe = (
        "import sys; from experiments.cli import main; rc = main(['train', '--config', sys.argv[1]]);"
        "heavy = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules];"
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "per_device_train_batch_size" in proc.stderr and "use 4" in proc.stderr
    assert "HEAVY []" in proc.stdout
