"""The `ilr` command as a user meets it: one error line and exit 2 for a user error, and every preset the
README names validates (TRL's GRPOConfig built for each of its methods) without loading a model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.pipeline import presets

ROOT = Path(__file__).resolve().parents[2]


def one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"ilr {command}: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["eval", "--task", "nosuchtask", "--model", "tiny"],
            "unknown task 'nosuchtask'. Known tasks: aime24",
        ),
        (["eval", "--task", "gsm8kk", "--model", "tiny"], "Did you mean 'gsm8k'?"),
        (
            ["eval", "--task", "gsm8k", "--model", "nosuchmodel", "--limit", "1"],
            "unknown model 'nosuchmodel'",
        ),
        (["eval", "--task", "gsm8k", "--model", "tiny", "--set", "limt=1"], "did you mean 'limit'?"),
        (
            ["eval", "--task", "gsm8k", "--model", "tiny", "--n", "2", "--protocol", "idea3"],
            "--protocol single",
        ),
        (["compare", "--config", "nosuchpreset"], "config 'nosuchpreset' not found"),
        (["compare", "--config", "cpu-dmo"], "did you mean 'cpu-demo'?"),
        (["compare", "--config", "tiny-smoke", "--set", "seedz=[1]"], "did you mean 'seeds'?"),
        (["train", "--config", "cpu-demo"], "run `ilr compare --config cpu-demo`"),
        (
            ["train", "--config", "ilr-tiny", "--set", "learning_rate=1e-4"],
            "write grpo: {learning_rate: 0.0001}",
        ),
        (["train", "--config", "ilr-tiny", "--set", "grpo.weight_decai=0.1"], "did you mean 'weight_decay'?"),
        (
            ["compare", "--config", "tiny-smoke", "--set", "grpo.weight_decai=0.1", "--dry-run"],
            "did you mean 'weight_decay'?",
        ),
        (["train", "--config", "ilr-tiny", "--set", "grpo.num_iterations=x", "--dry-run"], "expected int"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert expected in one_error_line(capsys, argv[0])


def test_a_corrupt_data_file_is_one_line_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = json.dumps({"problem": "1+1?", "answer": "2", "level": 1, "subject": "x", "solution": "2"})
    (tmp_path / "math500.jsonl").write_text(f"{good}\n{{not json\n")
    assert main(["eval", "--task", "math500", "--model", "tiny", "--data-dir", str(tmp_path)]) == 2
    assert "math500.jsonl:2: invalid JSON" in one_error_line(capsys, "eval")


def test_debug_shows_the_traceback_instead() -> None:
    from ilr_env.tasks.errors import TaskNotFoundError

    with pytest.raises(TaskNotFoundError, match="nosuchtask"):
        main(["eval", "--task", "nosuchtask", "--model", "tiny", "--debug"])


def test_an_old_style_flag_names_the_one_override_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--config", "ilr-tiny", "--max-steps", "5"])
    assert info.value.code == 2
    assert "unrecognized argument --max-steps: config values are set with --set max_steps=VALUE" in (
        capsys.readouterr().err
    )


def readme_presets() -> list[str]:
    """Every preset name the README gives to --config, in a command or in the same line's list (not a
    YAML file the README asks the user to write)."""
    found: set[str] = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if "--config" not in line:
            continue
        found.update(re.findall(r"--config\s+([\w.-]+(?:/[\w.-]+)*)", line))
        found.update(re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", line))
    own_files = {n for n in found if n.endswith(".yaml") and not (ROOT / n).is_file()}  # the user writes
    return sorted(found - own_files)


def test_the_readme_names_presets() -> None:
    assert {"cpu-demo", "ilr-tiny", "paper-qwen7b-qwen14b", "ablation-coop-p05"} <= set(readme_presets())


@pytest.mark.parametrize("name", readme_presets())
def test_every_preset_the_readme_names_validates(name: str) -> None:
    pytest.importorskip("trl")
    from experiments.commands.compare import CompareConfig
    from ilr_agents.config import ILRConfig
    from ilr_agents.grpo_config import check_grpo_args

    if name in presets.names("train"):
        configs = [ILRConfig.from_yaml(presets.resolve("train", name))]
    else:
        compare = CompareConfig.from_yaml(name)
        configs = [
            compare.training_config(label, seed) for label in compare.methods for seed in compare.seeds
        ]
    for config in configs:
        check_grpo_args(config)


# What paper-rehearsal may change from paper-llama8b-qwen7b: only what a 2-core CPU cannot run (models,
# sizes, processes, offline data); everything else must stay the paper preset's.
REHEARSAL_MAY_CHANGE = {
    "name",
    "description",
    "notes",
    "eval_max_new_tokens",
    "eval_batch_size",
    "train.models",
    "train.reward_model",
    "train.task_kwargs.validation_size",
    "train.train_limit",
    "train.validation_limit",
    "train.self_rank.batch_size",
    "train.self_rank.passes",
    "train.self_rank.max_new_tokens",
    "train.self_rank.min_parse_rate",
    "train.num_generations",
    "train.per_device_train_batch_size",
    "train.max_steps",
    "train.save_steps",
    "train.max_completion_length",
    "train.grpo.mask_truncated_completions",  # random models never end an answer: masked, no gradient
    "train.max_stage_tokens",
    "train.num_processes",
}


def _flat(data: object, prefix: str = "") -> dict[str, object]:
    """Dotted keys of a nested mapping; a list of benchmarks is keyed by task, so only limits may move."""
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    if prefix == "evaluate." and isinstance(data, list):
        return {
            f"evaluate.{e['task']}:{e['split']}": {k: v for k, v in e.items() if k != "limit"} for e in data
        }
    return {prefix.rstrip("."): data}


def test_the_rehearsal_differs_from_the_paper_preset_only_in_allowed_keys() -> None:
    import dataclasses

    from experiments.commands.compare import CompareConfig

    paper, rehearsal = (
        _flat(dataclasses.asdict(CompareConfig.from_yaml(n)))
        for n in ("paper-llama8b-qwen7b", "paper-rehearsal")
    )
    changed = {
        k for k in paper.keys() | rehearsal.keys() if paper.get(k, "absent") != rehearsal.get(k, "absent")
    }
    assert changed <= REHEARSAL_MAY_CHANGE, sorted(changed - REHEARSAL_MAY_CHANGE)
    # what the rehearsal exists to exercise is inherited, not restated
    for key in (
        "train.accelerate_config",
        "train.generation_backend",
        "train.difficulty",
        "train.abilities",
        "train.turn_order",
        "train.reward",
        "train.sandbox",
        "eval_backend",
    ):
        assert rehearsal[key] == paper[key], key
    assert rehearsal["train.num_processes"] == 2 and {k for k in paper if k.startswith("evaluate.")} == {
        k for k in rehearsal if k.startswith("evaluate.")
    }
