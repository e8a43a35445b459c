"""ILR co-training and the single-agent baseline on tiny random models (CPU, a few seconds each)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_type_hints

import numpy as np
import pytest

pytest.importorskip("trl")

from experiments.pipeline.methods import METHODS, train
from ilr_agents import training
from ilr_agents.calibration import calibrate
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.models import resolve_model


@pytest.fixture
def tiny_config(tiny_run: Callable[..., dict[str, Any]]) -> Callable[..., ILRConfig]:
    return lambda out, **overrides: ILRConfig(**tiny_run(out, **{"train_limit": 4, **overrides}))


def weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


def max_change(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(after[k] - before[k]).max()) for k in after if k in before)


def test_two_agents_train_and_each_trainer_gets_its_calibrated_rewards(
    tmp_path: Path, tiny_config: Callable[..., ILRConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, list[float]] = {}

    @functools.wraps(training.ilr_reward)
    def capture(prompts: list, completions: list, ilr_reward: list, trainer_state: Any = None, **kw: Any):
        key = f"{len(seen)}"
        seen[key] = list(ilr_reward)
        return list(ilr_reward)

    monkeypatch.setattr(training, "ilr_reward", capture)
    cfg = tiny_config(tmp_path / "run")
    result = train(cfg)
    assert result.step == 2

    for agent, name in zip(result.agents, cfg.models, strict=True):
        change = max_change(
            weights(Path(resolve_model(name))), weights(tmp_path / "run" / agent / "checkpoint-2")
        )
        assert change > 1e-5, f"{agent} did not move"

    # what every trainer's reward function received == the rollout's calibrated rewards, in order; the
    # rollouts file holds one evaluation-shaped episode record per line, with both rewards on every sample
    episodes = [
        json.loads(line) for line in (tmp_path / "run" / "rollouts.rank0.jsonl").read_text().splitlines()
    ]
    assert [e["step"] for e in episodes] == [1, 1, 2, 2] and {e["rank"] for e in episodes} == {0}
    expected = []
    for step in (1, 2):
        mine = [e for e in episodes if e["step"] == step]
        raw = np.array([[[s["reward"] for s in e["final_samples"][a]] for a in result.agents] for e in mine])
        cal = np.array(
            [[[s["calibrated_reward"] for s in e["final_samples"][a]] for a in result.agents] for e in mine]
        )
        np.testing.assert_allclose(cal, calibrate(raw), atol=1e-9)
        expected.extend(cal[:, ai].ravel() for ai in range(len(result.agents)))
        assert all(s["grade"] is not None for e in mine for a in result.agents for s in e["final_samples"][a])
    got = list(seen.values())
    assert len(got) == 4
    np.testing.assert_allclose(np.concatenate(got), np.concatenate(expected), atol=1e-9)

    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ilr_lines = [x for x in lines if x["kind"] == "ilr"]
    assert {(x["step"], x["agent"]) for x in ilr_lines} == {(s, a) for s in (1, 2) for a in result.agents}
    assert all(sum(x["mode_counts"].values()) == cfg.questions_per_step for x in ilr_lines)
    assert any(x["kind"] == "trl" and "rewards/ilr_reward/mean" in x for x in lines)
    assert (tmp_path / "run" / "checkpoints" / "manifest-00000002.json").is_file()


def per_agent(run: Path) -> dict[tuple[int, str, str], dict[str, list]]:
    """(step, question id, agent) -> its modes, raw and calibrated rewards, from the episode records."""
    out: dict[tuple[int, str, str], dict[str, list]] = {}
    for line in (run / "rollouts.rank0.jsonl").read_text().splitlines():
        episode = json.loads(line)
        for agent, samples in episode["final_samples"].items():
            row = out.setdefault(
                (episode["step"], episode["question"]["id"], agent), {"mode": [], "raw": [], "cal": []}
            )
            row["mode"].append(episode["modes"][agent])
            row["raw"].extend(s["reward"] for s in samples)
            row["cal"].extend(s["calibrated_reward"] for s in samples)
    return out


def test_calibration_off_passes_raw_rewards(tmp_path: Path, tiny_config: Callable[..., ILRConfig]) -> None:
    result = train(tiny_config(tmp_path / "run", calibration=False, max_steps=1))
    rows = per_agent(tmp_path / "run").values()
    assert rows and all(r["raw"] == r["cal"] for r in rows)
    assert result.step == 1


def test_single_agent_baseline_trains(tmp_path: Path, tiny_config: Callable[..., ILRConfig]) -> None:
    cfg = tiny_config(tmp_path / "base", method="grpo", models=["tiny"])
    result = train(cfg)
    assert result.step == 2
    assert result.agents == ["agent_0"]
    ckpt = tmp_path / "base" / "agent_0" / "checkpoint-2"
    assert max_change(weights(Path(resolve_model("tiny"))), weights(ckpt)) > 1e-5
    lines = [json.loads(x) for x in (tmp_path / "base" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert (tmp_path / "base" / "checkpoints" / "manifest-00000002.json").is_file()


def test_existing_run_needs_resume_flag(tmp_path: Path, tiny_config: Callable[..., ILRConfig]) -> None:
    cfg = tiny_config(tmp_path / "run", max_steps=1)
    train(cfg)
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg)
    with pytest.raises(ConfigError, match="num_generations"):
        train(cfg.replace(resume=True, num_generations=4, per_device_train_batch_size=8))


@pytest.mark.parametrize(
    ("overrides", "mode"),
    [
        ({"sampling": "full_episode", "mode": 1.0}, "cooperate"),
        ({"protocol": "debate", "debate_rounds": 2, "mode": "compete"}, "compete"),
    ],
)
def test_full_episode_sampling_debate_and_mode_ablations(
    tmp_path: Path, tiny_config: Callable[..., ILRConfig], overrides: dict, mode: str
) -> None:
    result = train(tiny_config(tmp_path / "run", max_steps=1, **overrides))
    assert result.step == 1
    rows = per_agent(tmp_path / "run").values()
    assert {m for r in rows for m in r["mode"]} == {mode}
    assert all(len(r["raw"]) == 2 for r in rows)  # n samples per agent and question


def test_every_method_a_config_accepts_has_a_trainer() -> None:
    assert set(METHODS) == set(get_args(get_type_hints(ILRConfig)["method"]))


def test_preparation_takes_a_resumed_runs_values_as_an_argument(tmp_path: Path) -> None:
    """A resumed run hands preparation its checkpoint's D_q and γ; the run folder's files (here stale,
    as a crash between steps can leave them) are outputs only."""
    import ilr_env
    from ilr_agents.preparation import Preparation, prepare_difficulty_and_abilities

    questions = ilr_env.load_questions("gsm8k", "train", limit=4)
    source = tmp_path / "d.json"
    source.write_text(json.dumps({q.id: 0.5 for q in questions}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "difficulty.json").write_text(json.dumps({q.id: 9.0 for q in questions}))
    (run / "abilities.json").write_text(json.dumps({"abilities": [9.0, 9.0]}))
    cfg = ILRConfig(
        models=["tiny", "tiny-llama"],
        task="gsm8k",
        difficulty=str(source),
        abilities=[0.1, 0.2],
        output_dir=str(run),
    )
    resumed = Preparation({q.id: 0.25 for q in questions}, [1.0, -1.0], [])
    assert prepare_difficulty_and_abilities(cfg, questions, questions[:2], resumed) == resumed
    assert json.loads((run / "difficulty.json").read_text()) == resumed.difficulty
    assert json.loads((run / "abilities.json").read_text())["abilities"] == [1.0, -1.0]
