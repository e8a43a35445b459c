"""`ilr eval`: accuracy of a model alone, or of several models in discussion (paper Table 4 layout).

Thin CLI over ilr_agents.evaluation. Writes ``results.json`` (metrics with 95% bootstrap CIs and
per-question rows), ``results.md`` (a markdown table) and ``transcripts.jsonl`` (every prompt and
message), plus ``viewer.html`` (the discussions, see ``ilr view``) to ``--out``, and prints the table.
"""

from __future__ import annotations

import argparse
import difflib
import json
import time
from pathlib import Path
from typing import Any

from ilr_agents.config import ConfigError
from ilr_agents.config_files import apply_overrides, parse_assignments
from ilr_env import agent_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="task name (see `ilr tasks`), e.g. gsm8k, math500")
    parser.add_argument("--split", default="test")
    parser.set_defaults(task_kwargs={})
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any option below by its name (YAML value), and task options with dotted keys: "
        "--set task_kwargs.min_terms=2 --set 'task_kwargs.operators=[+, -]' (reasoning-gym tasks)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N questions only")
    parser.add_argument("--seed", type=int, default=0)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="one model: zoo name (tiny, smollm2-135m), folder or hub id")
    who.add_argument(
        "--models", nargs="+", help="one model per agent (or, with --protocol single, each alone)"
    )
    parser.add_argument("--protocol", choices=["single", "idea3", "debate"], default="single")
    parser.add_argument(
        "--num-agents", type=int, default=2, help="agents when --model is used with idea3/debate"
    )
    parser.add_argument("--rounds", type=int, default=2, help="debate rounds")
    parser.add_argument(
        "--turn-order",
        choices=["simultaneous", "alternating"],
        default="simultaneous",
        help="idea3: every agent writes each stage at once, or A, B, A, B, A, B (paper figure)",
    )
    parser.add_argument(
        "--mode", default="dynamic", help="idea3 interaction: dynamic, cooperate, compete or p in [0,1]"
    )
    parser.add_argument(
        "--difficulty",
        default=None,
        help="D_q for dynamic mode: 'level', a JSON file {question_id: D_q}, or an `ilr difficulty` file "
        "(each agent then uses its own model's ranking)",
    )
    parser.add_argument(
        "--abilities",
        default=None,
        help="gamma per agent for dynamic mode: a JSON file or comma-separated floats",
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--n", type=int, default=1, help="samples per question (single protocol)")
    parser.add_argument(
        "--pass-k", type=int, nargs="*", default=[], help="report pass@k for these k (needs --n >= k)"
    )
    parser.add_argument("--backend", choices=["transformers", "vllm", "openai"], default="transformers")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="openai backend server")
    parser.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="env var holding the openai backend key"
    )
    parser.add_argument("--device", default=None, help="transformers backend: cpu, cuda, cuda:1 ...")
    parser.add_argument("--dtype", default=None, help="transformers backend: float32, bfloat16, auto")
    parser.add_argument("--adapter", default=None, help="transformers and vllm backends: LoRA adapter folder")
    parser.add_argument("--batch-size", type=int, default=16, help="questions per lockstep batch")
    parser.add_argument("--data-dir", default=None, help="local data folder (default: $ILR_DATA_DIR)")
    parser.add_argument(
        "--out", default=None, help="output folder (default: runs/eval-<task>-<protocol>-<time>)"
    )
    parser.add_argument("--no-progress", action="store_true")


def apply_settings(args: argparse.Namespace) -> argparse.Namespace:
    """``--set KEY=VALUE`` applied over the parsed flags (the override syntax train and compare share)."""
    settings = parse_assignments(args.set)
    known = [k for k in vars(args) if k != "set"]
    for key in settings:
        if key.split(".")[0] not in known:
            close = difflib.get_close_matches(key.split(".")[0], known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"options: {', '.join(known)}"
            raise ConfigError(f"--set {key}: no such eval option; {hint}")
        _check_type(key, settings[key], getattr(args, key.split(".")[0]))
    return argparse.Namespace(**apply_overrides(vars(args), settings))


def _check_type(key: str, value: Any, default: Any) -> None:
    """A ``--set`` value has the type of the flag it replaces (an int where a float is expected is fine);
    flags without a default (``None``) take any YAML value and are checked where they are used."""
    if default is None or "." in key:
        return
    expected: tuple[type, ...] = (int, float) if type(default) is float else (type(default),)
    if isinstance(value, bool) and bool not in expected or not isinstance(value, expected):
        raise ConfigError(
            f"--set {key}={value!r}: expected {' or '.join(t.__name__ for t in expected)}, like {default!r}"
        )


def _policy(spec: str, args: argparse.Namespace, cache: dict[str, Any]) -> Any:
    """Same spec -> same policy object: loaded once, and the rollout merges its agents into one call."""
    from ilr_agents.policies import PolicySpec, PolicySpecError, build_policy

    if spec in cache:
        return cache[spec]
    local = {"device": args.device, "dtype": args.dtype} if args.backend == "transformers" else {}
    try:
        described = PolicySpec(
            spec,
            backend=args.backend,
            adapter=args.adapter if args.backend != "openai" else None,
            seed=args.seed,
            base_url=args.base_url,
            api_key_env=args.api_key_env,
            **local,
        )
    except PolicySpecError as exc:
        raise ConfigError(str(exc)) from exc
    cache[spec] = build_policy(described)
    return cache[spec]


def _mode(value: str) -> str | float:
    try:
        return float(value)
    except ValueError:
        return value


def _difficulty(value: str, models: list[str]) -> Any:
    """'level', or a difficulty file (a self-ranking gives each agent its own model's ranking)."""
    from ilr_agents.difficulty_sources import read_difficulty

    if value == "level":
        return value
    return read_difficulty(value, agent_names(len(models)), models)


def _abilities(value: str, models: list[str]) -> list[float]:
    """Comma-separated floats are one gamma per agent; anything else is an abilities file."""
    from ilr_agents.difficulty_sources import read_abilities

    try:
        return [float(x) for x in value.split(",")]
    except ValueError:
        return read_abilities(value, agent_names(len(models)), models)


def _fmt(x: Any) -> str:
    return f"{100 * x:.1f}" if isinstance(x, float) else "–"


def markdown_table(task: str, protocol: str, metrics: dict[str, dict[str, Any]]) -> str:
    extra = sorted({k for m in metrics.values() for k in m if k.startswith("pass@")})
    head = ["model / agent", "accuracy %", "95% CI", "boxed %", "mean tokens", *extra]
    lines = [f"### {task} — {protocol}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in metrics.items():
        ci = m.get("ci95") or [None, None]
        tokens = m.get("mean_tokens")
        row = [
            name,
            _fmt(m.get("accuracy")),
            f"{_fmt(ci[0])}–{_fmt(ci[1])}",
            _fmt(m.get("boxed_rate")),
            f"{tokens:.0f}" if isinstance(tokens, float) else "–",
            *(_fmt(m.get(k)) for k in extra),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _sampling(args: argparse.Namespace) -> Any:
    """The run's sampling, checked before any model loads or request is sent (e.g. --n 2 with greedy)."""
    from ilr_agents.policies import SamplingParams

    if args.protocol != "single" and args.n != 1:
        raise ConfigError(
            "--n samples only apply to --protocol single (discussions grade one answer per agent)"
        )
    if any(k < 1 or k > args.n for k in args.pass_k):
        raise ConfigError(f"--pass-k {args.pass_k} needs 1 <= k <= --n ({args.n}): raise --n")
    try:
        return SamplingParams(
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            n=args.n,
            seed=args.seed,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _alone(args: argparse.Namespace, questions: list[Any], params: Any, env_kwargs: dict[str, Any]) -> list:
    from ilr_agents.evaluation import evaluate_alone

    cache: dict[str, Any] = {}
    return [
        evaluate_alone(
            _policy(spec, args, cache),
            questions,
            params,
            task=args.task,
            n=args.n,
            ks=args.pass_k,
            seed=args.seed,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            env_kwargs=env_kwargs,
        )
        for spec in args.models or [args.model]
    ]


def _together(
    args: argparse.Namespace, questions: list[Any], params: Any, env_kwargs: dict[str, Any]
) -> list:
    from ilr_agents.evaluation import evaluate_together

    specs = args.models or [args.model] * args.num_agents
    if len(specs) < 2:
        raise ConfigError(
            f"--protocol {args.protocol} needs at least 2 agents: pass --models A B (got {specs})"
        )
    env_kwargs = {**env_kwargs, "mode": _mode(args.mode), "debate_rounds": args.rounds}
    if args.protocol == "idea3":
        env_kwargs["turn_order"] = args.turn_order
    if args.difficulty is not None:
        env_kwargs["difficulty"] = _difficulty(args.difficulty, specs)
    if args.abilities is not None:
        env_kwargs["abilities"] = _abilities(args.abilities, specs)
    cache: dict[str, Any] = {}
    policies = {a: _policy(s, args, cache) for a, s in zip(agent_names(len(specs)), specs, strict=True)}
    result = evaluate_together(
        policies,
        questions,
        params,
        protocol=args.protocol,
        task=args.task,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        env_kwargs=env_kwargs,
    )
    return [result]


def run(args: argparse.Namespace) -> int:
    import ilr_env
    from experiments.reports.viewer import write_viewer
    from ilr_agents.rollout import write_jsonl

    args = apply_settings(args)
    params = _sampling(args)
    if not isinstance(args.task_kwargs, dict):
        raise ConfigError(f"task_kwargs={args.task_kwargs!r}: give a mapping, e.g. --set task_kwargs.size=50")
    started = time.perf_counter()
    questions = ilr_env.load_questions(
        args.task, split=args.split, data_dir=args.data_dir, limit=args.limit, **args.task_kwargs
    )
    env_kwargs: dict[str, Any] = {"data_dir": args.data_dir} if args.data_dir else {}
    play = _alone if args.protocol == "single" else _together
    results = play(args, questions, params, env_kwargs)
    seconds = time.perf_counter() - started
    metrics = {name: m for r in results for name, m in r.metrics.items()}
    out = Path(args.out or f"runs/eval-{args.task}-{args.protocol}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    payload = {
        "config": config,
        "seconds": seconds,
        "metrics": metrics,
        "per_question": [row for r in results for row in r.per_question],
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    table = markdown_table(args.task, args.protocol, metrics)
    (out / "results.md").write_text(table + f"\n{len(questions)} questions, {seconds:.1f} s.\n")
    write_jsonl([rec for r in results for rec in r.records], out / "transcripts.jsonl")
    write_viewer(out)
    print(table)
    for name, m in metrics.items():
        print(f"{name}: accuracy {100 * m['accuracy']:.1f}% on {m['n_questions']} questions")
    print(f"wrote {out}/results.json, results.md, transcripts.jsonl, viewer.html ({seconds:.1f} s)")
    return 0
