"""The paper's question difficulty D_q from LLM self-ranking, run with the agents' own policies.

Each model ranks the questions itself (``ilr_env.difficulty.rank_difficulty``: S passes over random
batches of K questions, a reply that does not parse into a permutation is asked again, then skipped and
counted, never guessed). The result keeps both readings of "self-ranking":

* per agent (the default, ``shared: false``): D_q^i comes from model i's own ranking. The paper's name
  and its framework figure (each agent judges "it's hard, I need cooperation" for itself) read as each
  model ranking for itself, and the mode rule then compares a question with an agent's ability on the
  agent's own scale: γ_i is fitted on the validation split against that agent's D_q^i.
* shared (``shared: true``): one D_q from every model's rankings pooled (each question's normalised
  ranks averaged over models), as the paper's formula writes D_q without an agent index.

Models that several agents share are ranked once. The file is an ``ilr_env.difficulty`` estimates file
(kind ``difficulty``): ``values`` holds the shared D_q, so it works anywhere a difficulty file does, and
``metadata["per_model"]`` holds each model's own D_q with its parse counts.

Failing fast: a model whose ranking replies mostly do not parse yields a difficulty that is mostly noise,
and at paper scale finding out after the whole pass costs hours. Each model first ranks
``probe_batches`` batches; if fewer than ``min_parse_rate`` of them parse (after retries), ranking stops
with a SelfRankError that prints the rate, before the full pass. The full pass is checked the same way.

Fallback: a question left in no parsed batch (a few, once the rate is above the threshold) gets the
median D_q of the questions that model did rank (0.0, the middle of the scale, if it ranked none). The
file keeps them apart: ``values`` holds ranked questions only, ``fallback_ids`` / ``fallback_value`` the
rest, and ``counts["fallback"]`` how many; the shared ``values`` include fallbacks, counted in
``counts["fallback_shared"]``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logit

from ilr_agents.policies.base import Policy, SamplingParams
from ilr_env import difficulty as dif
from ilr_env.protocols import load_prompts
from ilr_env.tasks.base import Question

SELF_RANK_METHOD = "self_rank_agents"


class SelfRankError(ValueError):
    """Bad self-ranking settings, or a ranking too incomplete to use; the message names the fix."""


@dataclass(frozen=True)
class SelfRankSettings:
    """How the questions are ranked (the ``self_rank:`` block of a training config, and `ilr difficulty`)."""

    batch_size: int = field(default=8, metadata={"help": "K: questions per ranking prompt (>= 2)"})
    passes: int = field(default=3, metadata={"help": "S: random re-batchings of the whole pool"})
    seed: int = field(default=0, metadata={"help": "seed of the batching"})
    max_retries: int = field(
        default=2, metadata={"help": "extra, sampled asks of a batch whose reply does not parse"}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "token budget of one ranking reply"})
    retry_temperature: float = field(
        default=0.7,
        metadata={
            "help": "first asks are greedy; a retry samples at this temperature (greedy repeats itself)"
        },
    )
    max_question_chars: int = field(
        default=2000, metadata={"help": "longer questions are cut in the ranking prompt"}
    )
    shared: bool = field(
        default=False,
        metadata={"help": "false: each agent's own D_q^i (default); true: one D_q pooled over models"},
    )
    min_parse_rate: float = field(
        default=0.5,
        metadata={
            "help": "in [0, 1]: a model whose parsed share of ranking batches is lower stops the ranking "
            "(probe first, then the full pass); 0 = never stop (unranked questions get the fallback)"
        },
    )
    probe_batches: int = field(
        default=16, metadata={"help": "batches each model ranks first, to check min_parse_rate early"}
    )

    def __post_init__(self) -> None:
        minimum = {
            "batch_size": 2,
            "passes": 1,
            "max_retries": 0,
            "max_new_tokens": 1,
            "max_question_chars": 1,
            "probe_batches": 1,
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "shared":
                ok = isinstance(value, bool)
            elif f.name == "retry_temperature":
                ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            elif f.name == "min_parse_rate":
                ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
            else:
                ok = (
                    isinstance(value, int) and not isinstance(value, bool) and value >= minimum.get(f.name, 0)
                )
            if not ok:
                raise SelfRankError(f"self_rank.{f.name}={value!r} is invalid: {f.metadata['help']}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SelfRankSettings:
        names = [f.name for f in fields(cls)]
        unknown = [k for k in (data or {}) if k not in names]
        if unknown:
            raise SelfRankError(f"unknown self_rank setting(s) {unknown}; known: {names}")
        return cls(**dict(data or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PolicyRanker:
    """A ``Ranker`` over one policy: greedy on a chat's first ask, sampled (seeded) when it is asked again."""

    def __init__(self, policy: Policy, settings: SelfRankSettings) -> None:
        self.policy = policy
        self.greedy = SamplingParams(max_new_tokens=settings.max_new_tokens, temperature=0.0)
        self.retry = SamplingParams(
            max_new_tokens=settings.max_new_tokens, temperature=settings.retry_temperature, seed=settings.seed
        )
        self._asked: set[str] = set()
        self.calls = 0

    def __call__(self, chats: list[list[dict[str, str]]]) -> list[str]:
        keys = [json.dumps(c, sort_keys=True) for c in chats]
        replies = [""] * len(chats)
        fresh = [i for i, k in enumerate(keys) if k not in self._asked]
        again = [i for i, k in enumerate(keys) if k in self._asked]
        for group, params in ((fresh, self.greedy), (again, self.retry)):
            if not group:
                continue
            if params is self.retry:  # a new seed per call, so a second retry does not repeat the first
                params = params.replace(seed=(params.seed or 0) + self.calls)
            outputs = self.policy.generate([chats[i] for i in group], params)
            self.calls += 1
            for i, out in zip(group, outputs, strict=True):
                replies[i] = out[0].text
        self._asked.update(keys)
        return replies


def parse_rate(counts: Mapping[str, int]) -> float:
    """Share of ranking batches whose reply parsed (after retries); 1.0 when there were none."""
    return counts["parsed"] / counts["batches"] if counts["batches"] else 1.0


def _check_rate(name: str, counts: Mapping[str, int], s: SelfRankSettings, stage: str) -> None:
    rate = parse_rate(counts)
    if rate < s.min_parse_rate:
        raise SelfRankError(
            f"self-ranking by {name!r}: {counts['parsed']} of {counts['batches']} {stage} ranking batches "
            f"parsed (parse rate {rate:.0%}), below self_rank.min_parse_rate={s.min_parse_rate}. This model "
            "does not write usable rankings: use difficulty: pass_rate or level, a model that follows the "
            "ranking format, more max_retries / max_new_tokens, or lower min_parse_rate (unranked "
            "questions then get the median D_q)"
        )


def _rank_with(
    name: str, ranker: PolicyRanker, questions: Sequence[Question], s: SelfRankSettings, prompts: Any
) -> dif.Estimates:
    """One model's ranking: a probe of ``probe_batches`` batches first when a threshold is set, then the
    full pass; either below ``min_parse_rate`` raises SelfRankError."""
    common = {
        "batch_size": s.batch_size,
        "seed": s.seed,
        "max_retries": s.max_retries,
        "max_question_chars": s.max_question_chars,
        "prompts": prompts,
    }
    if s.min_parse_rate > 0:
        probe_ranker = PolicyRanker(ranker.policy, s)  # its own memory of asks: the full pass starts greedy
        probe = dif.rank_difficulty(
            questions, probe_ranker, batches_per_pass=s.probe_batches, passes=1, **common
        )
        ranker.calls += probe_ranker.calls
        _check_rate(name, probe.metadata["counts"], s, "probe")
    est = dif.rank_difficulty(questions, ranker, passes=s.passes, **common)
    _check_rate(name, est.metadata["counts"], s, "")
    return est


def _fallback(values: Mapping[str, float], ids: Sequence[str]) -> tuple[float, list[str]]:
    """The documented fallback for questions no parsed batch covered: the median ranked D_q (0.0 if none)."""
    missing = [qid for qid in ids if qid not in values]
    value = float(np.median(list(values.values()))) if values else 0.0
    return value, missing


def self_rank(
    questions: Sequence[Question],
    policies: Mapping[str, Policy | Callable[[], Policy]],
    settings: SelfRankSettings | None = None,
    *,
    prompts: Any = None,
) -> dif.Estimates:
    """D_q from each model's own ranking of ``questions``; ``policies`` maps model name -> policy, or to a
    zero-argument loader, called when that model's turn comes (one model in memory at a time).

    Returns the shared D_q as ``values`` and every model's own D_q in ``metadata["per_model"]``
    (module docstring, with the parse-rate check and the fallback for unranked questions).
    """
    s = settings or SelfRankSettings()
    if not policies:
        raise SelfRankError("self-ranking needs at least one model")
    ids = [q.id for q in questions]
    per_model: dict[str, Any] = {}
    ranks: dict[str, list[float]] = {qid: [] for qid in ids}
    for name, entry in policies.items():
        ranker = PolicyRanker(entry if isinstance(entry, Policy) else entry(), s)
        started = time.perf_counter()
        est = _rank_with(name, ranker, questions, s, prompts)
        fallback_value, fallback_ids = _fallback(est.values, ids)
        counts = dict(est.metadata["counts"], generate_calls=ranker.calls, fallback=len(fallback_ids))
        del ranker  # the model is released before the next one loads
        per_model[name] = {
            "values": est.values,
            "counts": counts,
            "parse_rate": round(parse_rate(counts), 4),
            "fallback_value": fallback_value,
            "fallback_ids": fallback_ids,
            "seconds": round(time.perf_counter() - started, 3),
        }
        for qid, r in est.metadata["mean_normalised_rank"].items():
            ranks[qid].append(r)
    values = {qid: float(logit(np.mean(r)) / dif.IRT_SCALE) for qid, r in ranks.items() if r}
    shared_fallback, shared_missing = _fallback(values, ids)
    values.update(dict.fromkeys(shared_missing, shared_fallback))
    totals: dict[str, int] = {}
    for entry in per_model.values():
        for key, n in entry["counts"].items():  # summed over models
            totals[key] = totals.get(key, 0) + int(n)
    metadata = {
        "method": SELF_RANK_METHOD,
        "models": list(policies),
        "params": {
            **s.to_dict(),
            "prompt_version": load_prompts(prompts).version,
        },
        "counts": {
            **totals,
            "questions": len(questions),
            "unranked_shared": len(shared_missing),
            "fallback_shared": len(shared_missing),
        },
        "question_ids": ids,
        "per_model": per_model,
    }
    return dif.Estimates("difficulty", values, metadata)


def difficulty_for_agents(
    est: dif.Estimates, agents: Sequence[str], models: Sequence[str], *, shared: bool
) -> dict[str, dict[str, float]]:
    """Each agent's D_q: its model's own ranking (``shared=False``) or the pooled one, keyed by agent."""
    if shared:
        return {a: dict(est.values) for a in agents}
    per_model = est.metadata.get("per_model")
    if not isinstance(per_model, Mapping):
        raise SelfRankError(
            "this difficulty file holds one shared D_q, not each model's own ranking; rank again with "
            "`ilr difficulty`, or set self_rank: {shared: true}"
        )
    missing = [m for m in dict.fromkeys(models) if m not in per_model]
    if missing:
        raise SelfRankError(
            f"the self-ranking file has no ranking by model(s) {missing} (it has {sorted(per_model)}); "
            "rank with the agents' own models"
        )
    return {a: _with_fallback(per_model[m]) for a, m in zip(agents, models)}


def _with_fallback(entry: Mapping[str, Any]) -> dict[str, float]:
    """A model's ranked D_q plus its counted fallbacks (files written before fallbacks have none)."""
    out = {q: float(d) for q, d in entry["values"].items()}
    value = float(entry.get("fallback_value", 0.0))
    out.update({q: value for q in entry.get("fallback_ids", []) if q not in out})
    return out


__all__ = [
    "SELF_RANK_METHOD",
    "PolicyRanker",
    "SelfRankError",
    "SelfRankSettings",
    "cached_or_ranked",
    "difficulty_for_agents",
    "parse_rate",
    "self_rank",
]


def cached_or_ranked(
    questions: Sequence[Question],
    models: Sequence[str],
    settings: SelfRankSettings,
    cache: Path,
    *,
    prompts: Any = None,
    load_policy: Any = None,
) -> dif.Estimates:
    """The self-ranking of ``questions`` by ``models``, read from ``cache`` when it was made with the same
    models, settings and prompts for a superset of these questions, else computed and written there.

    ``load_policy(name) -> Policy`` builds each distinct model's policy (default: TransformersPolicy).
    """
    names = list(dict.fromkeys(models))
    wanted = {k: v for k, v in settings.to_dict().items() if k != "shared"}  # sharing is applied later
    if cache.is_file():
        est = dif.load_json(cache, kind="difficulty")
        params = {k: est.metadata.get("params", {}).get(k) for k in wanted}
        same = (
            est.metadata.get("method") == SELF_RANK_METHOD
            and sorted(est.metadata.get("models", [])) == sorted(names)
            and params == wanted
            and est.metadata["params"].get("prompt_version") == load_prompts(prompts).version
            and {q.id for q in questions} <= set(est.metadata.get("question_ids", []))
        )
        if same:
            return est
    if load_policy is None:
        from ilr_agents.policies import PolicySpec, build_policy

        def load_policy(name: str) -> Policy:
            return build_policy(PolicySpec(name))

    loaders = {name: functools.partial(load_policy, name) for name in names}
    est = self_rank(questions, loaders, settings, prompts=prompts)
    dif.save_json(est, cache)
    return est
