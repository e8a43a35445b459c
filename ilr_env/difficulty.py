"""Question difficulty D_q, agent ability γ_i and the cooperate/compete rule of Dynamic Interaction.

Everything sits on one scale, the one of the paper's item-response model

    P(q, i) = 1 / (1 + exp(-1.7 (γ_i − D_q)))            (`p_correct`)

and agent i cooperates on q iff P(q, i) < 0.5, i.e. iff D_q > γ_i (`choose_mode`).

Difficulty sources (each returns `Estimates`, saved once with `save_json` and reloaded with `load_json`):

* `rank_difficulty` — the paper's LLM self-ranking: S passes; each pass shuffles the pool with the
  function's own seeded generator and cuts it into batches of K questions (B batches per pass, or all);
  the ranker orders each batch from easiest to hardest. A question at 0-based position p of a batch of k
  gets the mid-rank percentile (p + 0.5) / k, its percentiles are averaged over passes to r̄_q, and
  D_q = logit(r̄_q) / 1.7, so that a question ranked in the middle has D_q = 0 and the 1.7 of P(q, i)
  turns D_q back into log-odds. (The paper does not publish its mapping; this one is ours.)
* `empirical_difficulty` — from pass rates: D_q = logit((failures + ½) / (trials + 1)) / 1.7.
* `level_difficulty` — from a dataset's level field (MATH levels 1–5): the level's percentile within the
  level range goes through the same logit / 1.7 map (levels 1..5 → −1.29, −0.50, 0, 0.50, 1.29).

Ability: `fit_rasch_ability` is the 1-parameter (Rasch) maximum-likelihood γ given known D_q and 0/1
correctness; `fit_rasch` fits abilities and difficulties jointly from a response matrix.

No model code lives here: the ranker is any callable from a list of chats to a list of strings, e.g.
``lambda chats: [c[0].text for c in policy.generate(chats, params)]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, logit

from ilr_env.protocols import load_prompts
from ilr_env.tasks.base import Question

IRT_SCALE = 1.7
"""The logistic-to-normal-ogive constant of the paper's P(q, i)."""

ESTIMATES_FORMAT = "ilr-estimates-v1"

Ranker = Callable[[list[list[dict[str, str]]]], Sequence[str]]
EstimateKind = Literal["difficulty", "ability"]


class DifficultyError(ValueError):
    """Bad input to a difficulty or ability estimator, naming the value and the fix."""


# ---------------------------------------------------------------------------------------------- the rule


def p_correct(gamma: float | np.ndarray, d: float | np.ndarray) -> float | np.ndarray:
    """P(q, i) = 1 / (1 + exp(-1.7 (γ − D))); floats in, float out, arrays broadcast.

    Example:
        >>> p_correct(0.0, 0.0)
        0.5
    """
    p = expit(IRT_SCALE * (np.asarray(gamma, dtype=float) - np.asarray(d, dtype=float)))
    return float(p) if np.ndim(p) == 0 else p


def choose_mode(gamma: float, d: float) -> Literal["cooperate", "compete"]:
    """Cooperate iff P(q, i) < 0.5.

    Decided as D > γ, the exact form of P < 0.5: computing P first would call a gap of 1e-18 a tie.

    Example:
        >>> choose_mode(gamma=0.0, d=1.0), choose_mode(gamma=1.0, d=0.0)
        ('cooperate', 'compete')
    """
    return "cooperate" if float(d) > float(gamma) else "compete"


def _to_scale(percentile: np.ndarray | float) -> np.ndarray | float:
    return logit(percentile) / IRT_SCALE


# ------------------------------------------------------------------------------------------ estimates


@dataclass(frozen=True)
class Estimates:
    """Named values (question id → D_q, or agent → γ) plus how they were made.

    ``metadata`` always holds ``method`` and ``params`` and, where the method has them, ``counts``.
    """

    kind: EstimateKind
    values: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ESTIMATES_FORMAT,
            "kind": self.kind,
            "values": self.values,
            "metadata": self.metadata,
        }


def save_json(estimates: Estimates, path: str | Path) -> Path:
    """Write estimates (values and metadata) so they are computed once and reused."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(estimates.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_json(path: str | Path, kind: EstimateKind | None = None) -> Estimates:
    """Read estimates written by `save_json`; ``kind`` guards against passing abilities as difficulties."""
    path = Path(path)
    if not path.is_file():
        raise DifficultyError(
            f"no estimates file at {str(path)!r}; create it with ilr_env.difficulty.save_json"
        )
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("format") != ESTIMATES_FORMAT:
        raise DifficultyError(
            f"{str(path)!r} is not an ilr estimates file (expected format {ESTIMATES_FORMAT!r})"
        )
    if kind is not None and raw["kind"] != kind:
        raise DifficultyError(
            f"{str(path)!r} holds {raw['kind']} estimates, but {kind} estimates were expected"
        )
    values = {str(k): float(v) for k, v in raw["values"].items()}
    return Estimates(kind=raw["kind"], values=values, metadata=raw.get("metadata", {}))


# --------------------------------------------------------------------------------- other difficulties


def empirical_difficulty(
    pass_rates: Mapping[str, float | tuple[int, int]], *, trials: int | None = None
) -> Estimates:
    """D_q from how often a reference model solved q: logit((failures + ½) / (trials + 1)) / 1.7.

    Values are either ``(successes, trials)`` pairs or rates in [0, 1]; rates need ``trials`` (how many
    attempts each rate comes from). The ½ / 1 smoothing keeps never-solved and always-solved questions
    finite (a Jeffreys-style prior) and shrinks questions with few attempts toward D = 0.
    """
    if not pass_rates:
        raise DifficultyError(
            "pass_rates is empty; pass {question_id: (successes, trials)} for at least one question"
        )
    values: dict[str, float] = {}
    for qid, rate in pass_rates.items():
        if isinstance(rate, tuple):
            successes, n = rate
            if not (0 <= successes <= n and n >= 1):
                raise DifficultyError(
                    f"pass rate for {qid!r} is {rate}; expected (successes, trials), 0 ≤ successes ≤ "
                    "trials, trials ≥ 1"
                )
        else:
            if trials is None or trials < 1:
                raise DifficultyError(
                    f"pass rate for {qid!r} is a bare rate; pass trials=<attempts per question> or "
                    "(successes, trials) pairs"
                )
            if not 0.0 <= float(rate) <= 1.0:
                raise DifficultyError(f"pass rate for {qid!r} is {rate}; expected a value in [0, 1]")
            successes, n = float(rate) * trials, trials
        values[str(qid)] = float(_to_scale((n - successes + 0.5) / (n + 1.0)))
    return Estimates(
        "difficulty",
        values,
        {
            "method": "empirical",
            "params": {"smoothing": 0.5, "trials": trials},
            "counts": {"questions": len(values)},
        },
    )


def question_level(question: Question, key: str = "level") -> float | None:
    """The numeric level in ``metadata[key]`` (3, 3.0 or "Level 3"), or None when absent."""
    raw = question.metadata.get(key)
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int | float):
        return float(raw)
    match = re.search(r"-?\d+(?:\.\d+)?", str(raw))
    return float(match.group()) if match else None


def level_difficulty(
    questions: Sequence[Question], *, key: str = "level", levels: tuple[float, float] | None = None
) -> Estimates:
    """D_q from a level field (ints, or strings such as "Level 3"): the level's percentile → logit / 1.7.

    ``levels=(lowest, highest)`` fixes the range (MATH: (1, 5)); by default it is the range seen in
    ``questions``, so pass it when ``questions`` is a small subset.
    """
    found = {q.id: question_level(q, key) for q in questions}
    missing = [qid for qid, lv in found.items() if lv is None]
    if not questions or missing:
        raise DifficultyError(
            f"level difficulty needs metadata[{key!r}] on every question; missing for {len(missing)} "
            f"(e.g. {missing[:3]}). Use difficulty=<dict or JSON path> from rank_difficulty or "
            "empirical_difficulty instead"
        )
    lv = {qid: v for qid, v in found.items() if v is not None}
    lo, hi = levels if levels is not None else (min(lv.values()), max(lv.values()))
    if hi < lo or any(not lo <= v <= hi for v in lv.values()):
        raise DifficultyError(
            f"levels={levels} does not cover the levels present ({min(lv.values())}..{max(lv.values())})"
        )
    span = hi - lo + 1.0
    values = {qid: float(_to_scale((v - lo + 0.5) / span)) for qid, v in lv.items()}
    return Estimates(
        "difficulty",
        values,
        {"method": "level", "params": {"key": key, "levels": [lo, hi]}, "counts": {"questions": len(values)}},
    )


# --------------------------------------------------------------------------------------- self-ranking

_ITEM = r"(?:\b(?:question|q)\s*#?\s*)?\d+"
_SEP = r"\s*(?:,|;|->|→|=>|<|\band\b|\bthen\b)?\s*"
_RUN = re.compile(rf"{_ITEM}(?:{_SEP}{_ITEM})+", re.IGNORECASE)
_NUMBERED_LINE = re.compile(
    r"^\s*(\d+)\s*[.):]\s*\**\s*(?:question|q)?\s*#?\s*(\d+)\b", re.IGNORECASE | re.MULTILINE
)


def parse_ranking(text: str, k: int) -> list[int] | None:
    """The 1-based labels of a batch of ``k`` in easiest-to-hardest order, or None.

    Accepts "3, 1, 2", "[3,1,2]", "Ranking: Q3, Q1, Q2", "Q3 < Q1 < Q2", "Q3 -> Q1 -> Q2" and numbered
    lines ("1. Q3", "2) Question 1", ...). The last candidate in the text that is a permutation of 1..k
    wins (models reason first and conclude last). Nothing else is guessed: a partial list, a repeat, or
    an ambiguous "Q2 > Q1" order gives None.

    Example:
        >>> parse_ranking("Q2 looks easiest. Ranking: Q2, Q3, Q1", 3)
        [2, 3, 1]
    """
    if not isinstance(text, str) or k < 2:
        return None
    target = set(range(1, k + 1))
    candidates: list[tuple[int, list[int]]] = []
    for match in _RUN.finditer(text):
        numbers = [int(n) for n in re.findall(r"\d+", match.group())]
        candidates.append((match.end(), numbers))
    lines = list(_NUMBERED_LINE.finditer(text))
    for start in range(len(lines)):
        if int(lines[start].group(1)) != 1 or start + k > len(lines):
            continue
        block = lines[start : start + k]
        if [int(m.group(1)) for m in block] == list(range(1, k + 1)):
            candidates.append((block[-1].end(), [int(m.group(2)) for m in block]))
    for _, numbers in sorted(candidates, key=lambda c: c[0], reverse=True):
        if len(numbers) == k and set(numbers) == target:
            return numbers
    return None


def ranking_prompt(
    questions: Sequence[Question], *, max_question_chars: int = 2000, prompts: Any = None
) -> list[dict[str, str]]:
    """Chat asking to order ``questions`` (labelled Q1..Qk) from easiest to hardest."""
    ps = load_prompts(prompts)
    problems = "\n\n".join(
        ps.render(("rank", "problem"), index=i, question=_clip(q.prompt, max_question_chars))
        for i, q in enumerate(questions, start=1)
    )
    user = ps.render(("rank", "user"), k=len(questions), problems=problems)
    return [{"role": "system", "content": ps.template("rank", "system")}, {"role": "user", "content": user}]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def _check_rank_args(
    ids: list[str], batch_size: int, batches_per_pass: int | None, passes: int, max_retries: int
) -> None:
    if batch_size < 2:
        raise DifficultyError(f"batch_size={batch_size}: a ranking needs at least 2 questions per batch")
    if passes < 1 or max_retries < 0 or (batches_per_pass is not None and batches_per_pass < 1):
        raise DifficultyError(
            f"passes={passes}, max_retries={max_retries}, batches_per_pass={batches_per_pass}: "
            "need passes ≥ 1, max_retries ≥ 0 and batches_per_pass ≥ 1 (or None for all)"
        )
    if len(set(ids)) != len(ids) or len(ids) < 2:
        raise DifficultyError(
            f"rank_difficulty needs ≥ 2 questions with unique ids, got {len(ids)} ({len(set(ids))} unique)"
        )


def _ask_until_parsed(
    ranker: Ranker, chats: list[Any], sizes: list[int], max_retries: int, counts: dict[str, int]
) -> dict[int, list[int]]:
    """Each batch's parsed ranking (1-based labels, easiest first), asking again for unparsed replies.

    Batches still unparsed after ``max_retries`` more calls are left out and counted as skipped.
    """
    parsed: dict[int, list[int]] = {}
    pending = list(range(len(chats)))
    for attempt in range(max_retries + 1):
        if not pending:
            break
        if attempt:
            counts["retried_calls"] += 1
        replies = list(ranker([chats[b] for b in pending]))
        if len(replies) != len(pending):
            raise DifficultyError(
                f"ranker returned {len(replies)} replies for {len(pending)} chats; it must return "
                "one string per chat"
            )
        still: list[int] = []
        for b, reply in zip(pending, replies, strict=True):
            labels = parse_ranking(reply, sizes[b])
            if labels is None:
                still.append(b)
            else:
                counts["parsed"] += 1
                parsed[b] = labels
        pending = still
    counts["skipped"] += len(pending)
    return parsed


def rank_difficulty(
    questions: Sequence[Question],
    ranker: Ranker,
    *,
    batch_size: int = 8,
    batches_per_pass: int | None = None,
    passes: int = 3,
    seed: int = 0,
    max_retries: int = 2,
    max_question_chars: int = 2000,
    prompts: Any = None,
) -> Estimates:
    """D_q by LLM self-ranking (module docstring for the mapping).

    Each pass makes one ranker call with all its batches; batches whose reply does not parse into a
    permutation are asked again (up to ``max_retries`` more calls), then skipped and counted — a ranking
    is never invented. A final batch of one question carries no order and is dropped (counted).
    Questions that end up in no parsed batch are absent from ``values`` and counted as ``unranked``.
    """
    ids = [q.id for q in questions]
    _check_rank_args(ids, batch_size, batches_per_pass, passes, max_retries)
    rng = np.random.default_rng(seed)
    sums = dict.fromkeys(ids, 0.0)
    seen = dict.fromkeys(ids, 0)
    counts = {"batches": 0, "parsed": 0, "retried_calls": 0, "skipped": 0, "singletons_dropped": 0}
    for _ in range(passes):
        order = rng.permutation(len(questions))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if batches_per_pass is not None:
            batches = batches[:batches_per_pass]
        if len(batches[-1]) < 2:
            batches.pop()
            counts["singletons_dropped"] += 1
        counts["batches"] += len(batches)
        chats = [
            ranking_prompt([questions[j] for j in b], max_question_chars=max_question_chars, prompts=prompts)
            for b in batches
        ]
        rankings = _ask_until_parsed(ranker, chats, [len(b) for b in batches], max_retries, counts)
        for b, order_labels in rankings.items():
            batch = batches[b]
            for position, label in enumerate(order_labels):
                qid = ids[batch[label - 1]]
                sums[qid] += (position + 0.5) / len(batch)
                seen[qid] += 1
    mean_rank = {qid: sums[qid] / seen[qid] for qid in ids if seen[qid]}
    values = {qid: float(_to_scale(r)) for qid, r in mean_rank.items()}
    counts["questions"] = len(ids)
    counts["unranked"] = len(ids) - len(values)
    metadata = {
        "method": "self_rank",
        "params": {
            "batch_size": batch_size,
            "batches_per_pass": batches_per_pass,
            "passes": passes,
            "seed": seed,
            "max_retries": max_retries,
            "prompt_version": load_prompts(prompts).version,
        },
        "counts": counts,
        "mean_normalised_rank": mean_rank,
        "appearances": {qid: seen[qid] for qid in ids},
    }
    return Estimates("difficulty", values, metadata)


# ---------------------------------------------------------------------------------------------- Rasch


def fit_rasch_ability(
    correct: Sequence[bool] | np.ndarray, difficulties: Sequence[float] | np.ndarray, *, bound: float = 6.0
) -> float:
    """Maximum-likelihood γ of P(correct) = 1/(1+exp(-1.7(γ − D_q))) for one agent.

    The log-likelihood is concave, so the bounded 1-D maximum is the MLE whenever it is finite. When every
    answer is correct (or every answer wrong) the likelihood keeps rising without limit and the fit
    returns the bound (+bound or −bound): on this scale ±6 already means P > 0.99996 against a question
    of difficulty 0, so the mode rule is unaffected.
    """
    y = np.asarray(correct, dtype=float)
    d = np.asarray(difficulties, dtype=float)
    if y.shape != d.shape or y.ndim != 1 or y.size == 0:
        raise DifficultyError(
            f"correct {y.shape} and difficulties {d.shape} must be 1-D and the same non-zero length"
        )
    if not np.all((y == 0) | (y == 1)) or not np.all(np.isfinite(d)):
        raise DifficultyError("correct must hold only 0/1 (or bools) and difficulties only finite numbers")
    if y.all():
        return float(bound)
    if not y.any():
        return float(-bound)

    def nll(g: float) -> float:
        z = IRT_SCALE * (g - d)
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    res = minimize_scalar(nll, bounds=(-bound, bound), method="bounded", options={"xatol": 1e-9})
    return float(res.x)


def fit_abilities(
    correct_by_agent: Mapping[str, Mapping[str, bool]],
    difficulties: Mapping[str, float],
    *,
    bound: float = 6.0,
) -> Estimates:
    """γ for each agent from its {question id: correct} on questions with a known D_q."""
    values: dict[str, float] = {}
    used: dict[str, int] = {}
    for agent, results in correct_by_agent.items():
        qids = [q for q in results if q in difficulties]
        if not qids:
            raise DifficultyError(f"agent {agent!r} has no result on a question with a known difficulty")
        values[str(agent)] = fit_rasch_ability(
            [bool(results[q]) for q in qids], [difficulties[q] for q in qids], bound=bound
        )
        used[str(agent)] = len(qids)
    return Estimates(
        "ability",
        values,
        {
            "method": "rasch_mle",
            "params": {"bound": bound, "scale": IRT_SCALE},
            "counts": {"questions_per_agent": used},
        },
    )


def abilities_by_agent(
    values: Mapping[str, float], agents: Sequence[str], models: Sequence[str] | None = None
) -> dict[str, float]:
    """γ for each of ``agents``, matched by key, never by position or sort order.

    Keys are either agent names (``agent_0`` …) or, when ``models`` (one per agent) is given, model names;
    a model key gives its γ to every agent that runs that model. Every agent needs a value and every key
    must name an agent (or a model of this run): a file made for another run is an error, not a guess.

    Example:
        >>> abilities_by_agent({"m-big": 1.0, "m-small": -0.5}, ["agent_0", "agent_1"], ["m-small", "m-big"])
        {'agent_0': -0.5, 'agent_1': 1.0}
    """
    keys = [str(k) for k in values]
    names = list(dict.fromkeys(models or []))
    accepted = list(agents) + [m for m in names if m not in agents]
    unknown = [k for k in keys if k not in accepted]
    if unknown:
        raise DifficultyError(
            f"abilities name unknown key(s) {unknown}; key each γ by agent name or by model name "
            f"(accepted keys: {accepted})"
        )
    if models is not None and not all(k in agents for k in keys):
        if len(models) != len(agents):
            raise DifficultyError(f"{len(models)} model names for {len(agents)} agents: give one per agent")
        if not all(k in names for k in keys):
            raise DifficultyError(f"abilities mix agent names and model names ({keys}); use one kind of key")
        missing = [m for m in names if m not in values]
        if missing:
            raise DifficultyError(f"abilities keyed by model name lack the model(s) {missing}")
        return {a: float(values[m]) for a, m in zip(agents, models, strict=True)}
    missing = [a for a in agents if a not in values]
    if missing:
        raise DifficultyError(f"abilities must give every agent of {list(agents)}; missing {missing}")
    return {a: float(values[a]) for a in agents}


def fit_rasch(
    responses: np.ndarray, *, l2: float = 0.01, max_iter: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """Joint maximum likelihood (abilities, difficulties) from an agents × questions 0/1 matrix.

    NaN marks a missing response. Two documented choices make the fit well defined: difficulties are
    centred to mean 0 (the model only identifies γ − D), and a small ridge ``l2`` keeps agents or
    questions with all-correct / all-wrong responses finite instead of drifting to ±∞.
    """
    r = np.asarray(responses, dtype=float)
    if r.ndim != 2 or r.size == 0:
        raise DifficultyError(
            f"responses must be a non-empty 2-D agents × questions array, got shape {r.shape}"
        )
    mask = ~np.isnan(r)
    y = np.where(mask, r, 0.0)
    if not np.all((y == 0) | (y == 1)):
        raise DifficultyError("responses must hold only 0, 1 or NaN (missing)")
    n_agents, n_items = r.shape

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        g, b = params[:n_agents], params[n_agents:]
        z = IRT_SCALE * (g[:, None] - b[None, :])
        nll = np.sum(mask * (np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * np.sum(params**2)
        resid = mask * (expit(z) - y) * IRT_SCALE
        grad = np.concatenate([resid.sum(axis=1), -resid.sum(axis=0)]) + l2 * params
        return float(nll), grad

    res = minimize(
        objective, np.zeros(n_agents + n_items), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    g, b = res.x[:n_agents], res.x[n_agents:]
    shift = b.mean()
    return g - shift, b - shift


__all__ = [
    "ESTIMATES_FORMAT",
    "IRT_SCALE",
    "DifficultyError",
    "Estimates",
    "Ranker",
    "abilities_by_agent",
    "choose_mode",
    "empirical_difficulty",
    "fit_abilities",
    "fit_rasch",
    "fit_rasch_ability",
    "level_difficulty",
    "load_json",
    "p_correct",
    "parse_ranking",
    "question_level",
    "rank_difficulty",
    "ranking_prompt",
    "save_json",
]
