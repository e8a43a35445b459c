"""`difficulty: self_rank` in a training config: each agent's modes come from its own model's ranking and
its ability is fitted against that ranking; the ranking is cached in the run folder and reused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("trl")

from experiments.pipeline.methods import train
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.policies import ScriptedPolicy
from ilr_agents.preparation import prepare_difficulty_and_abilities
from ilr_agents.self_ranking import SelfRankError, SelfRankSettings, self_rank
from ilr_agents.training_data import load_training_questions
from ilr_env import difficulty as dif

SETTINGS = {"batch_size": 4, "passes": 2}


def by_length(chat: list[dict[str, str]], reverse: bool = False) -> str:
    """A ranker that calls longer problems harder (or, reversed, easier)."""
    text = chat[-1]["content"]
    found = re.findall(r"Q(\d+): (.*?)(?=\n\nQ\d+: |\n\nRank these)", text, flags=re.DOTALL)
    order = sorted(found, key=lambda item: len(item[1]), reverse=reverse)
    return "Ranking: " + ", ".join(f"Q{label}" for label, _ in order)


def config(out: Path, **overrides) -> ILRConfig:
    base = {
        "models": ["tiny", "tiny-llama"],
        "task": "gsm8k",
        "train_limit": 4,
        "validation_limit": 4,
        "num_generations": 2,
        "per_device_train_batch_size": 4,
        "max_steps": 1,
        "save_steps": 1,
        "max_completion_length": 6,
        "max_stage_tokens": 4,
        "grpo": {"mask_truncated_completions": False},
        "report_to": ["none"],
        "progress": False,
        "output_dir": str(out),
        "difficulty": "self_rank",
        "self_rank": SETTINGS,
        "turn_order": "alternating",
    }
    return ILRConfig(**{**base, **overrides})


def test_train_with_self_ranked_difficulty_and_fitted_abilities_reuses_the_cache(tmp_path: Path) -> None:
    cfg = config(tmp_path / "run")
    train_q, val_q = load_training_questions(cfg)
    # Random zoo models cannot write a ranking, so the models' rankings are scripted (one calls long
    # problems hard, the other easy) and stored where `ilr train` caches its ranking; the tiny models
    # would fail to rank (next test), so a run that succeeds has read this file.
    ranking = self_rank(
        [*train_q, *val_q],
        {
            "tiny": ScriptedPolicy(by_length),
            "tiny-llama": ScriptedPolicy(lambda chat: by_length(chat, reverse=True)),
        },
        SelfRankSettings(**SETTINGS),
    )
    cache = dif.save_json(ranking, tmp_path / "run" / "self_rank.json")
    before = cache.read_bytes()
    result = train(cfg)
    assert result.step == 1
    own = {"agent_0": ranking.metadata["per_model"]["tiny"]["values"]}
    own["agent_1"] = ranking.metadata["per_model"]["tiny-llama"]["values"]
    assert json.loads((tmp_path / "run" / "difficulty.json").read_text()) == own
    gammas = json.loads((tmp_path / "run" / "abilities.json").read_text())["abilities"]
    for agent, gamma in zip(("agent_0", "agent_1"), gammas, strict=True):  # fitted on validation vs own D
        wrong = [False] * len(val_q)  # random models answer nothing right
        assert gamma == pytest.approx(dif.fit_rasch_ability(wrong, [own[agent][q.id] for q in val_q]))
    episode = json.loads((tmp_path / "run" / "rollouts.rank0.jsonl").read_text().splitlines()[0])
    for agent, mode in episode["modes"].items():
        assert mode == dif.choose_mode(gammas[int(agent[-1])], own[agent][episode["question"]["id"]])
    # resume: the same difficulties and abilities, the cached ranking untouched
    resumed = train(cfg.replace(resume=True, max_steps=2))
    assert resumed.resumed_from == 1 and resumed.step == 2
    assert json.loads((tmp_path / "run" / "difficulty.json").read_text()) == own
    assert cache.read_bytes() == before
    # without the derived files, preparation falls back on the cached ranking (no model ranks again)
    (tmp_path / "run" / "difficulty.json").unlink()
    (tmp_path / "run" / "abilities.json").unlink()
    assert prepare_difficulty_and_abilities(cfg, train_q, val_q).difficulty == own


def test_models_that_cannot_rank_stop_training_with_the_rate(tmp_path: Path) -> None:
    settings = {"batch_size": 4, "passes": 1, "max_retries": 0, "max_new_tokens": 4, "probe_batches": 1}
    cfg = config(tmp_path / "run", self_rank=settings, models=["tiny", "tiny"])
    train_q, val_q = load_training_questions(cfg)
    with pytest.raises(SelfRankError, match=r"'tiny': 0 of 1 probe ranking batches parsed \(parse rate 0%\)"):
        prepare_difficulty_and_abilities(cfg, train_q, val_q)
    assert not (tmp_path / "run" / "self_rank.json").exists()  # stopped at the probe, before the pass


def test_with_no_threshold_unranked_questions_get_the_counted_fallback(tmp_path: Path) -> None:
    settings = {"batch_size": 4, "passes": 1, "max_retries": 0, "max_new_tokens": 4, "min_parse_rate": 0}
    cfg = config(tmp_path / "run", self_rank=settings, models=["tiny", "tiny"])
    train_q, val_q = load_training_questions(cfg)
    prep = prepare_difficulty_and_abilities(cfg, train_q, val_q)
    stored = dif.load_json(tmp_path / "run" / "self_rank.json", kind="difficulty")
    entry = stored.metadata["per_model"]["tiny"]
    assert stored.metadata["models"] == ["tiny"]  # one distinct model ranks once
    assert entry["counts"]["parsed"] == 0 and entry["counts"]["fallback"] == len(train_q) + len(val_q)
    assert prep.difficulty["agent_0"] == {q.id: 0.0 for q in [*train_q, *val_q]}


def test_shared_reading_gives_every_agent_the_pooled_difficulty(tmp_path: Path) -> None:
    cfg = config(tmp_path / "run", self_rank={**SETTINGS, "shared": True}, abilities=[0.0, 0.0])
    train_q, val_q = load_training_questions(cfg)
    ranking = self_rank(
        [*train_q, *val_q],
        {"tiny": ScriptedPolicy(by_length), "tiny-llama": ScriptedPolicy(by_length)},
        SelfRankSettings(**SETTINGS),
    )
    dif.save_json(ranking, tmp_path / "run" / "self_rank.json")
    prep = prepare_difficulty_and_abilities(cfg, train_q, val_q)
    assert prep.difficulty == ranking.values and prep.abilities == [0.0, 0.0]


def test_self_rank_settings_are_validated_with_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("unknown self_rank setting(s) ['K']")):
        config(tmp_path, self_rank={"K": 8})
    with pytest.raises(ConfigError, match="turn_order='alternating' is defined for protocol idea3"):
        config(tmp_path, protocol="debate")


def test_a_file_from_ilr_difficulty_gives_each_agent_its_own_ranking(tmp_path: Path) -> None:
    ranked = tmp_path / "d.json"
    cfg = config(tmp_path / "run", difficulty=str(ranked), abilities=[0.0, 0.0])
    train_q, val_q = load_training_questions(cfg)
    ranking = self_rank(
        [*train_q, *val_q],
        {
            "tiny": ScriptedPolicy(by_length),
            "tiny-llama": ScriptedPolicy(lambda c: by_length(c, reverse=True)),
        },
        SelfRankSettings(**SETTINGS),
    )
    dif.save_json(ranking, ranked)
    prep = prepare_difficulty_and_abilities(cfg, train_q, val_q)
    assert prep.difficulty["agent_1"] == ranking.metadata["per_model"]["tiny-llama"]["values"]
    assert prep.difficulty["agent_0"] != prep.difficulty["agent_1"]
