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
from ilr_agents.config_files import apply_overrides, parse_assignments, read_yaml

ROOT = Path(__file__).resolve().parents[2]


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
        ({"grpo": {"learning_rate": 0.0}}, "grpo.learning_rate", "must be > 0"),
        ({"grpo": {"learning_rate": -1e-5}}, "grpo.learning_rate", "must be > 0"),
        ({"grpo": {"beta": -0.1}}, "grpo.beta", "must be >= 0"),
        ({"grpo": {"num_generations": 8}}, "grpo.num_generations", "write num_generations: 8"),
        ({"grpo": {"save_strategy": "no"}}, "grpo.save_strategy", "remove it"),
        ({"max_steps": 0}, "max_steps", ">= 1"),
        ({"temperature": 0.0}, "temperature", "> 0"),
        ({"mode": 1.5}, "mode", "[0, 1]"),
        ({"mode": -0.5}, "mode", "[0, 1]"),
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
        ("grpo.learning_rate", "1e-5", "grpo.learning_rate"),
        ("grpo.mask_truncated_completions", "no", "grpo.mask_truncated_completions"),
        ("models", "tiny", "models"),
        ("protocol", "idea4", "protocol"),
        ("mode", "cooperative", "mode"),
        ("mode", True, "mode"),
        ("use_cpu", 1, "use_cpu"),
    ],
)
def test_wrong_types_name_field_and_expected_type(key: str, value: object, field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field}=.*wrong type: expected"):
        ILRConfig.from_dict(apply_overrides({}, {key: value}))


def test_ints_are_accepted_for_floats() -> None:
    cfg = ILRConfig.from_dict({"grpo": {"learning_rate": 1, "beta": 0}, "mode": 1})
    assert isinstance(cfg.grpo["learning_rate"], float) and cfg.grpo["learning_rate"] == 1.0
    assert isinstance(cfg.grpo["beta"], float) and cfg.mode == 1.0 and isinstance(cfg.mode, float)


def test_one_mode_field_takes_a_name_or_a_cooperation_probability() -> None:
    assert [ILRConfig(mode=m).mode for m in ("dynamic", "cooperate", "compete", 0, 0.5, 1)] == [
        "dynamic",
        "cooperate",
        "compete",
        0.0,
        0.5,
        1.0,
    ]


@pytest.mark.parametrize(
    ("key", "value", "new_place"),
    [
        ("learning_rate", 1e-4, "write grpo: {learning_rate: 0.0001}"),
        ("mask_truncated_completions", False, "write grpo: {mask_truncated_completions: False}"),
        ("gradient_checkpointing", True, "write grpo: {gradient_checkpointing: True}"),
        ("cooperation_probability", 0.5, "write mode: 0.5"),
    ],
)
def test_keys_of_earlier_versions_name_their_new_place(key: str, value: object, new_place: str) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        ILRConfig.from_dict({key: value})
    assert new_place in str(info.value)


def test_grpo_settings_merge_over_the_defaults() -> None:
    cfg = ILRConfig.from_dict({"grpo": {"weight_decay": 0.01, "learning_rate": 2e-4}})
    assert cfg.grpo["weight_decay"] == 0.01 and cfg.grpo["learning_rate"] == 2e-4
    assert cfg.grpo["loss_type"] == "grpo" and cfg.grpo["mask_truncated_completions"] is True
    assert ILRConfig.from_dict(cfg.to_dict()) == cfg


def test_structural_fields_come_from_field_metadata() -> None:
    assert set(ILRConfig.structural_fields()) == {
        "models",
        "method",
        "protocol",
        "num_generations",
        "per_device_train_batch_size",
        "lora",
        "lora_r",
        "lora_alpha",
        "lora_target_modules",
        "task",
        "train_split",
        "train_limit",
        "seed",
    }


def test_extends_merges_a_file_over_its_parent(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump({"max_steps": 7, "grpo": {"learning_rate": 1e-3, "warmup_steps": 2}})
    )
    (tmp_path / "child.yaml").write_text(
        yaml.safe_dump({"extends": "base", "models": ["tiny", "tiny"], "grpo": {"learning_rate": 5e-4}})
    )
    cfg = ILRConfig.from_yaml(tmp_path / "child.yaml", {"grpo.weight_decay": 0.1})
    assert cfg.max_steps == 7 and cfg.models == ["tiny", "tiny"]
    assert (cfg.grpo["learning_rate"], cfg.grpo["warmup_steps"], cfg.grpo["weight_decay"]) == (5e-4, 2, 0.1)
    (tmp_path / "loop.yaml").write_text("extends: loop\nmax_steps: 1\n")
    with pytest.raises(ConfigError, match="extends itself"):
        read_yaml(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: nowhere\n")
    with pytest.raises(ConfigError, match="extends='nowhere' names no file"):
        read_yaml(tmp_path / "orphan.yaml")


def test_assignments_are_yaml_values_with_dotted_keys() -> None:
    parsed = parse_assignments(["max_steps=5", "grpo.learning_rate=1e-4", "models=[tiny, tiny-llama]"])
    assert parsed == {"max_steps": 5, "grpo.learning_rate": 1e-4, "models": ["tiny", "tiny-llama"]}
    assert apply_overrides({"grpo": {"beta": 0.1}}, parsed)["grpo"] == {"beta": 0.1, "learning_rate": 1e-4}
    with pytest.raises(ConfigError, match="write KEY=VALUE"):
        parse_assignments(["max_steps"])
    with pytest.raises(ConfigError, match="models is not a mapping"):
        apply_overrides({"models": ["tiny"]}, {"models.x": 1})


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
