"""End to end: `ilr compare` on the tiny-smoke preset trains both methods, evaluates alone and reports."""

import json
import shutil
from pathlib import Path

import pytest

from experiments.pipeline import presets
from experiments.pipeline.compare import CompareConfig, run_comparison
from experiments.reports.records import read_records
from experiments.reports.viewer import collect
from ilr_agents.config import ConfigError


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = CompareConfig.from_yaml("tiny-smoke", {"output_root": str(root)})
    report = run_comparison(config)
    return config, report


def test_compare_writes_report_results_and_plots(smoke_run):
    _, report = smoke_run
    run_dir = report.parent
    results = json.loads((run_dir / "results.json").read_text())
    bench = "rg/basic_arithmetic:test[:8]"
    labels = set(results["evaluations"][bench])
    assert {
        "base tiny",
        "base tiny-llama",
        "grpo agent_0",
        "grpo agent_1",
        "ilr agent_0",
        "ilr agent_1",
    } <= labels
    for label in labels:
        (outcome,) = results["evaluations"][bench][label]
        assert len(outcome["correct"]) == results["held_out"][bench]["evaluated"] > 0
        assert all(
            c and b
            for s, c, b in zip(outcome["strict"], outcome["correct"], outcome["boxed"], strict=True)
            if s
        )
    text = report.read_text()
    assert "| ilr agent_1 |" in text and "McNemar" in text
    for png in ("training_reward.png", "mode_mix.png", "calibration_shift.png"):
        assert (run_dir / png).stat().st_size > 1000
    # every evaluated episode is on disk, and results.json's outcomes are those records' grades
    index = json.loads((run_dir / "transcripts" / "index.json").read_text())
    assert {(e["label"].removesuffix(" seed 0"), e["benchmark"]) for e in index} == {
        (label, bench) for label in labels
    }
    for entry in index:
        records = list(read_records(run_dir / "transcripts" / entry["file"]))
        (outcome,) = results["evaluations"][bench][entry["label"].removesuffix(" seed 0")]
        assert [r["question"]["id"] for r in records] == outcome["question_ids"]
        assert [r["final_samples"]["agent_0"][0]["grade"]["correct"] for r in records] == outcome["correct"]
        assert outcome["length"] == [len(r["final_samples"]["agent_0"][0]["completion_ids"]) for r in records]
    # the viewer: one row per held-out question, every evaluated model side by side
    table, _ = collect(run_dir)
    evaluated = [r for r in table.rows if r.group == f"eval · {bench}"]
    assert len(evaluated) == results["held_out"][bench]["evaluated"]
    assert all(len(r.cells) == len(labels) for r in evaluated)
    assert (run_dir / "viewer.html").stat().st_size > 10_000


def test_the_viewer_shows_every_ilr_training_step(smoke_run):
    _, report = smoke_run
    table, problems = collect(report.parent)
    assert problems == []
    trained = [r for r in table.rows if r.group.startswith("train · ilr")]
    assert trained and all(r.question and r.gold for r in trained)
    for cell in (c for r in trained for c in r.cells.values()):
        assert cell["mode"] in ("cooperate", "compete") and cell["turns"] and cell["finals"]
        assert all(f["raw"] is not None and f["cal"] is not None for f in cell["finals"])


def test_report_only_rebuilds_from_results(smoke_run):
    config, report = smoke_run
    report.unlink()
    rebuilt = run_comparison(config, report_only=True)
    assert rebuilt.is_file() and "| base tiny |" in rebuilt.read_text()


def test_report_only_on_a_folder_without_records_still_writes_the_report(tmp_path, capsys):
    """A run from an older ilr (its results.json only, as docs/results keeps) gets its report, and says why it
    has no viewer."""
    (tmp_path / "cpu-demo").mkdir()
    shutil.copy(Path(__file__).parents[2] / "docs/results/cpu-demo/results.json", tmp_path / "cpu-demo")
    config = CompareConfig.from_yaml("cpu-demo", {"output_root": str(tmp_path)})
    report = run_comparison(config, report_only=True)
    assert "| ilr agent_1 |" in report.read_text() and not (tmp_path / "cpu-demo" / "viewer.html").exists()
    assert "viewer.html not written" in capsys.readouterr().out


def test_evaluating_on_the_training_split_is_refused():
    with pytest.raises(ConfigError, match="training split"):
        CompareConfig.from_yaml(
            "tiny-smoke", {"evaluate": [{"task": "rg/basic_arithmetic", "split": "train"}]}
        )


def test_unknown_key_and_preset_are_named():
    with pytest.raises(ConfigError, match="did you mean 'seeds'"):
        CompareConfig.from_yaml("tiny-smoke", {"seedz": [1]})
    with pytest.raises(ConfigError, match="tiny-smoke"):
        CompareConfig.from_yaml("no-such-preset")


@pytest.mark.parametrize("preset", presets.names("compare"))
def test_every_compare_preset_validates_before_anything_loads(preset):
    config = CompareConfig.from_yaml(preset)
    assert config.methods and config.evaluate
    for label in config.methods:
        assert config.training_config(label, config.seeds[0]).max_steps >= 1


def test_ablation_presets_differ_from_ilr_only_in_their_setting():
    base = CompareConfig.from_yaml("cpu-demo")
    for preset, field, value in [
        ("ablation-no-calibration", "calibration", False),
        ("ablation-coop-p0", "mode", 0.0),
        ("ablation-coop-p05", "mode", 0.5),
        ("ablation-coop-p1", "mode", 1.0),
    ]:
        config = CompareConfig.from_yaml(preset)
        ilr = config.training_config("ilr", 0).to_dict()
        variant_label = next(label for label in config.methods if label != "ilr")
        variant = config.training_config(variant_label, 0).to_dict()
        changed = {k for k in ilr if ilr[k] != variant[k] and k != "output_dir"}
        assert changed == {field} and variant[field] == value
        reference = base.training_config("ilr", 0).to_dict()
        assert all(ilr[k] == reference[k] for k in ilr if k != "output_dir")


def test_single_arm_ablations_run_one_arm_of_the_combined_preset():
    combined = CompareConfig.from_yaml("ablation-dynamic-interaction")
    assert [tuple(p) for p in combined.paired] == [
        (f"ilr {agent}", f"{label} {agent}")
        for agent in ("agent_0", "agent_1")
        for label in ("ilr-coop-p0", "ilr-coop-p05", "ilr-coop-p1")
    ]
    for arm in ("p0", "p05", "p1"):
        single = CompareConfig.from_yaml(f"ablation-coop-{arm}")
        assert list(single.methods) == ["ilr", f"ilr-coop-{arm}"]
        assert single.paired == [[f"ilr {a}", f"ilr-coop-{arm} {a}"] for a in ("agent_0", "agent_1")]
    with pytest.raises(ConfigError, match="only=.*names no method"):
        CompareConfig.from_yaml("ablation-dynamic-interaction", {"only": ["ilr", "ilr-coop-p2"]})


def test_paper_presets_differ_only_in_their_models():
    group1, *others = (
        CompareConfig.from_yaml(name)
        for name in presets.names("compare")
        if name.startswith("paper-") and name != "paper-rehearsal"  # the CPU rehearsal: test_cli.py
    )
    assert len(others) == 2
    for other in others:
        for label in group1.methods:
            a, b = group1.training_config(label, 0).to_dict(), other.training_config(label, 0).to_dict()
            assert {k for k in a if a[k] != b[k]} == {"models", "output_dir"}
        assert other.evaluate == group1.evaluate and other.eval_backend == group1.eval_backend


def test_overrides_reach_compare_fields_and_shared_training_fields():
    config = CompareConfig.from_yaml(
        "tiny-smoke", {"seeds": [1, 2], "max_steps": 3, "grpo.weight_decay": 0.1, "train.lora": True}
    )
    assert config.seeds == [1, 2]
    for label in config.methods:
        cfg = config.training_config(label, 1)
        assert (cfg.max_steps, cfg.grpo["weight_decay"], cfg.lora) == (3, 0.1, True)


def test_a_train_preset_given_to_compare_names_the_right_command():
    with pytest.raises(ConfigError, match="run `ilr train --config ilr-tiny`"):
        CompareConfig.from_yaml("ilr-tiny")
