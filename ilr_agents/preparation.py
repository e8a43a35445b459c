"""Before training: question difficulties D_q and agent abilities γ_i, computed once and stored as JSON.

The paper ranks questions with an LLM (self-ranking) and fits each agent's Rasch ability on a held-out
validation set. On a laptop that is expensive, so the cheaper sources are first-class too:

* ``difficulty: level``  — the dataset's own level field (``ilr_env.difficulty.level_difficulty``);
* ``difficulty: pass_rate`` — the base models' greedy pass rates on the training and validation
  questions (``empirical_difficulty``; needs one generation per question and model: use
  ``train_limit`` or a precomputed file for big sets);
* ``difficulty: self_rank`` — the paper's LLM self-ranking by the agents' own base models
  (``ilr_agents.self_ranking``; settings in ``self_rank:``), run once and cached in
  ``<output_dir>/self_rank.json``; each agent gets its own D_q^i unless ``self_rank: {shared: true}``.
  ``ilr difficulty`` makes the same file ahead of time, for ``difficulty: <file>``;
* a JSON file: ``{question_id: D_q}`` or an ``ilr_env.difficulty.save_json`` estimates file.

Abilities: ``rasch`` fits γ_i (``fit_abilities``, Rasch MLE, bounded at ±6 when an agent gets all or
nothing right) on the base models' validation answers; or a JSON file / list, one per agent. Results go
to ``<output_dir>/difficulty.json`` and ``abilities.json`` (reused by a restart that has no checkpoint
yet); a resumed run passes its checkpoint's values, so it sees the same modes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ilr_agents.checkpoint import atomic_write_json
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.difficulty_sources import (
    is_self_ranking,
    read_abilities,
    read_difficulty,
    read_json,
    self_ranked_difficulty,
)
from ilr_agents.distributed_prep import once_on_main, real_weights
from ilr_agents.policies import PolicySpec, SamplingParams, build_policy
from ilr_agents.training_data import plain_prompts
from ilr_env import agent_names, grade
from ilr_env import difficulty as diff


@dataclass(frozen=True)
class Preparation:
    difficulty: dict[str, Any]  # question id -> D_q, or agent -> (question id -> D_q)
    abilities: list[float]
    validation_accuracy: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "difficulty": self.difficulty,
            "abilities": self.abilities,
            "validation_accuracy": self.validation_accuracy,
        }


def _base_model(config: ILRConfig, name: str) -> PolicySpec:
    """A base model as preparation reads it: the run's dtype and device, greedy batches of 16."""
    device = "cpu" if config.use_cpu else None
    return PolicySpec(name, dtype=config.dtype, max_batch_size=16, device=device, return_logprobs=True)


def _base_policy(config: ILRConfig, name: str) -> Any:
    """A base model to rank or answer with, whole on this process (never a zeroed FSDP placeholder)."""
    with real_weights():
        return build_policy(_base_model(config, name))


def _base_correctness(config: ILRConfig, questions: Sequence[Any]) -> list[dict[str, bool]]:
    """Each base model answers every question once, greedily, with the plain prompt; graded by ilr_env."""
    params = SamplingParams(max_new_tokens=config.max_completion_length, temperature=0.0)
    by_model: dict[str, dict[str, bool]] = {}
    chats = plain_prompts(questions, config.prompts)
    for name in dict.fromkeys(config.models):  # greedy answers of one base model are the same for every copy
        policy = _base_policy(config, name)
        outs = policy.generate(chats, params)
        by_model[name] = {
            q.id: bool(grade(q, o[0].text).correct) for q, o in zip(questions, outs, strict=True)
        }
        del policy
    return [by_model[name] for name in config.models]


def _per_agent(difficulty: dict[str, Any], num_agents: int) -> dict[str, dict[str, float]]:
    """{agent: {question id: D_q}}: a shared D_q (question id -> value) is given to every agent."""
    agents = agent_names(num_agents)
    if difficulty and all(isinstance(v, dict) for v in difficulty.values()):
        return {a: difficulty[a] for a in agents}
    return dict.fromkeys(agents, difficulty)


def _self_ranked(config: ILRConfig, questions: Sequence[Any]) -> dict[str, Any]:
    """Each agent's D_q from its base model's own ranking (or one pooled D_q): the run's cached ranking
    (made now if missing or made with other models or settings), or a file from `ilr difficulty`."""
    from ilr_agents.self_ranking import SelfRankSettings, cached_or_ranked

    settings = SelfRankSettings.from_dict(config.self_rank)
    if config.difficulty == "self_rank":
        est = cached_or_ranked(
            questions,
            config.models,
            settings,
            Path(config.output_dir) / "self_rank.json",
            prompts=config.prompts or None,
            load_policy=lambda name: _base_policy(config, name),
        )
        return self_ranked_difficulty(est, config.agents, config.models, shared=settings.shared)
    return read_difficulty(config.difficulty, config.agents, config.models, shared=settings.shared)


def prepare_difficulty_and_abilities(
    config: ILRConfig,
    train_questions: Sequence[Any],
    validation_questions: Sequence[Any],
    resumed: Preparation | None = None,
) -> Preparation:
    """D_q for every training question and γ_i for every agent, stored in the run folder.

    ``resumed``: the checkpoint's own values (a resumed run keeps its modes); else the run folder's
    stored values when they were made for the same models and source; else computed now.
    """
    prep = resumed or _stored(config) or _prepare(config, train_questions, validation_questions)
    _store(config, prep)
    return prep


def _stored(config: ILRConfig) -> Preparation | None:
    run_dir = Path(config.output_dir)
    cached_d, cached_a = run_dir / "difficulty.json", run_dir / "abilities.json"
    if not (cached_d.is_file() and cached_a.is_file()):
        return None
    stored = json.loads(cached_a.read_text())
    same_run = (
        stored.get("models", config.models) == config.models
        and stored.get("difficulty_source", config.difficulty) == config.difficulty
    )
    if not same_run:
        return None
    return Preparation(
        json.loads(cached_d.read_text()), stored["abilities"], stored.get("validation_accuracy", [])
    )


def _store(config: ILRConfig, prep: Preparation) -> None:
    run_dir = Path(config.output_dir)
    atomic_write_json(run_dir / "difficulty.json", prep.difficulty)
    atomic_write_json(
        run_dir / "abilities.json",
        {
            "abilities": prep.abilities,
            "validation_accuracy": prep.validation_accuracy,
            "models": config.models,
            "difficulty_source": config.difficulty,
        },
    )


def _prepare(
    config: ILRConfig, train_questions: Sequence[Any], validation_questions: Sequence[Any]
) -> Preparation:
    needs_models = config.difficulty == "pass_rate" or config.abilities == "rasch"
    every = list({q.id: q for q in [*train_questions, *validation_questions]}.values())
    judged = (
        _base_correctness(config, every if config.difficulty == "pass_rate" else validation_questions)
        if needs_models and config.mode == "dynamic"
        else None
    )
    difficulty, self_ranked = _difficulty(config, every, judged)
    per_agent = _per_agent(difficulty, config.num_agents)
    _check_covered(config, train_questions, per_agent, self_ranked)
    abilities, accuracy = _abilities(config, validation_questions, judged, per_agent)
    return Preparation(difficulty, abilities, accuracy)


def _difficulty(
    config: ILRConfig, every: list[Any], judged: list[dict[str, bool]] | None
) -> tuple[dict[str, Any], bool]:
    """(D_q as the config's source gives it, whether it came from a self-ranking)."""
    if config.difficulty == "level":
        return dict(diff.level_difficulty(every).values), False
    if config.difficulty == "pass_rate":
        if judged is None:  # modes are fixed (ablation): difficulties are never read
            return {q.id: 0.0 for q in every}, False
        counts = {q.id: (sum(j[q.id] for j in judged), len(judged)) for q in every}
        return dict(diff.empirical_difficulty(counts).values), False
    if config.difficulty == "self_rank":
        if config.mode != "dynamic":  # difficulties are never read: do not pay for a ranking
            return {q.id: 0.0 for q in every}, True
        return _self_ranked(config, every), True
    if is_self_ranking(read_json(config.difficulty, "difficulty")):  # from `ilr difficulty`: own rankings
        return _self_ranked(config, every), True
    return read_difficulty(config.difficulty, config.agents, config.models), False


def _check_covered(
    config: ILRConfig,
    train_questions: Sequence[Any],
    per_agent: dict[str, dict[str, float]],
    self_ranked: bool,
) -> None:
    missing = [q.id for q in train_questions if any(q.id not in d for d in per_agent.values())]
    if not missing:
        return
    source = (
        Path(config.output_dir) / "self_rank.json" if config.difficulty == "self_rank" else config.difficulty
    )
    hint = (
        f" (the self-ranking found no parseable ranking that covers them: see the counts in {source}"
        "; raise self_rank passes or max_retries)"
    )
    raise ConfigError(
        f"difficulty has no value for {len(missing)} training questions (e.g. {missing[:3]}): "
        "give every training question a D_q" + (hint if self_ranked else "")
    )


def _abilities(
    config: ILRConfig,
    validation_questions: Sequence[Any],
    judged: list[dict[str, bool]] | None,
    per_agent: dict[str, dict[str, float]],
) -> tuple[list[float], list[float]]:
    """(γ per agent, each base model's validation accuracy when it was measured)."""
    accuracy: list[float] = []
    if isinstance(config.abilities, list):
        abilities = [float(a) for a in config.abilities]
    elif config.abilities != "rasch":
        abilities = read_abilities(config.abilities, config.agents, config.models)
    elif judged is None:  # modes are fixed (ablation): abilities are never read
        abilities = [0.0] * config.num_agents
    else:
        try:
            abilities = [  # each agent against its own D_q source (the same one its modes use)
                diff.fit_abilities(
                    {"a": {q.id: j[q.id] for q in validation_questions}}, per_agent[config.agents[i]]
                ).values["a"]
                for i, j in enumerate(judged)
            ]
        except diff.DifficultyError as exc:
            raise ConfigError(f"cannot fit abilities on the validation questions: {exc}") from exc
        accuracy = [sum(j[q.id] for q in validation_questions) / len(validation_questions) for j in judged]
    if len(abilities) != config.num_agents:
        raise ConfigError(
            f"abilities has {len(abilities)} values for {config.num_agents} agents: one per model"
        )
    return abilities, accuracy


def prepare_once(
    config: ILRConfig,
    train_questions: Sequence[Any],
    validation_questions: Sequence[Any],
    resumed: Preparation | None = None,
) -> tuple[Preparation, int]:
    """``prepare_difficulty_and_abilities`` for a run of one or many processes: the main process computes
    (and alone writes the run's JSON files), every process gets the result; also returns the rank that ran
    it."""
    return once_on_main(
        lambda: prepare_difficulty_and_abilities(config, train_questions, validation_questions, resumed)
    )
