"""`ilr difficulty`: question difficulty D_q by LLM self-ranking, with the agents' own models.

    ilr difficulty --task math --split train,validation --models smollm2-135m tiny --out runs/d.json

Each distinct model ranks random batches of K questions from easiest to hardest, S times over
(ilr_agents.self_ranking). The JSON file holds the pooled D_q, each model's own D_q and the provenance:
models, prompt version, K, S, seed and how many replies could not be parsed. Give it to a training
config as ``difficulty: <file>`` or to ``ilr eval --difficulty``. A model whose replies parse less often
than ``--min-parse-rate`` stops the command with exit status 2 after a probe of ``--probe-batches``
batches, printing the rate (ilr_agents.self_ranking).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ilr_agents.self_ranking import SelfRankSettings

    defaults = SelfRankSettings()
    parser.add_argument("--task", required=True, help="task name (see `ilr tasks`), e.g. math")
    parser.add_argument(
        "--split", default="train,validation", help="comma-separated splits ranked together (one pool)"
    )
    parser.add_argument("--models", nargs="+", required=True, help="zoo names, folders or hub ids")
    parser.add_argument("--out", required=True, help="output JSON file")
    parser.add_argument(
        "--limit",
        default=None,
        help="first N questions of each split, or one N per split (e.g. 24,16 for train,validation)",
    )
    parser.add_argument("--task-kwargs", type=json.loads, default={}, metavar="JSON", help="task options")
    parser.add_argument("--data-dir", default=None, help="local data folder (default: $ILR_DATA_DIR)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="K: questions per prompt")
    parser.add_argument("--passes", type=int, default=defaults.passes, help="S: random re-batchings")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the batching")
    parser.add_argument("--max-retries", type=int, default=defaults.max_retries)
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument(
        "--min-parse-rate",
        type=float,
        default=defaults.min_parse_rate,
        help="stop (exit 2) when a model's parsed share of ranking batches is lower; 0 = never",
    )
    parser.add_argument(
        "--probe-batches", type=int, default=defaults.probe_batches, help="batches ranked first to check it"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if present)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, auto")


def run(args: argparse.Namespace) -> int:
    from ilr_agents.policies import PolicySpec, build_policy
    from ilr_agents.self_ranking import SelfRankError, SelfRankSettings, self_rank
    from ilr_env import difficulty as dif
    from ilr_env.tasks import load_questions

    settings = SelfRankSettings(
        batch_size=args.batch_size,
        passes=args.passes,
        seed=args.seed,
        max_retries=args.max_retries,
        max_new_tokens=args.max_new_tokens,
        min_parse_rate=args.min_parse_rate,
        probe_batches=args.probe_batches,
    )
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    limits = [int(x) for x in str(args.limit).split(",")] if args.limit is not None else [None]
    if len(limits) not in (1, len(splits)):
        raise SelfRankError(f"--limit {args.limit} gives {len(limits)} values for {len(splits)} splits")
    questions = {}
    for split, limit in zip(splits, limits * len(splits) if len(limits) == 1 else limits, strict=True):
        for q in load_questions(args.task, split, data_dir=args.data_dir, limit=limit, **args.task_kwargs):
            questions.setdefault(q.id, q)
    policies = {  # loaded one at a time, when that model's turn to rank comes
        name: functools.partial(build_policy, PolicySpec(name, device=args.device, dtype=args.dtype))
        for name in dict.fromkeys(args.models)
    }
    est = self_rank(list(questions.values()), policies, settings)
    est.metadata.update(task=args.task, splits=args.split, task_kwargs=args.task_kwargs)
    path = dif.save_json(est, Path(args.out))
    for name, entry in est.metadata["per_model"].items():
        c = entry["counts"]
        print(
            f"{name}: {c['parsed']}/{c['batches']} batches parsed (parse rate {entry['parse_rate']:.0%}; "
            f"{c['skipped']} skipped after retries, {c['retried_calls']} retry calls), "
            f"{c['unranked']}/{c['questions']} questions unranked (given the fallback D_q "
            f"{entry['fallback_value']:.2f}), {entry['seconds']:.1f} s"
        )
    ranked = len(questions) - est.metadata["counts"]["fallback_shared"]
    print(f"{ranked}/{len(questions)} questions ranked (pooled), the rest the fallback -> {path}")
    return 0
