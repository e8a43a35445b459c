"""Case 5 — training overhead: an ILR step (2 agents) vs single-agent GRPO steps, and their peak memory.

Each run is a separate ``experiments.pipeline.methods.train`` process (so ``ru_maxrss`` is that run's own
peak): ILR with models [M, M] and single-agent GRPO with [M], both built from the same ``grpo_args``, the same
questions and n. Step times come from step-begin timestamps taken inside the child (successive
``on_step_begin`` events of agent_0's trainer) — the same clock for both methods, covering generation,
rewards, calibration, loss, backward, the optimiser step and logging. The first step is dropped
(first-call allocations) and the last one is never timed (it ends with the checkpoint save).

Equal generated tokens: an ILR agent generates two short discussion turns plus its n final answers per
question; the GRPO run's answers are lengthened so that each agent generates the same number of tokens
per step (``L_grpo = L + 2 * S / n``), and every generate call is forced to its full length (``force_tokens``)
so a real model's early stops cannot skew it. The ratio is ILR step time over two GRPO steps (one per agent).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from experiments.benchmarks.common import BenchContext, CaseResult, Stat, ratios

NAME = "training_overhead"
TITLE = "Training overhead (ILR 2-agent step vs 2 x GRPO step, tiny model)"
STAMPS_FILE = "bench_step_stamps.json"
FORCE_KEY = "bench_min_new_tokens"


def base_config(model: str, *, steps: int, out: Path, lora: bool, seed: int) -> dict[str, Any]:
    return {
        "models": [model],
        "method": "grpo",
        "task": "gsm8k",
        "train_split": "train",
        "train_limit": 64,
        "validation_limit": 4,
        "mode": 0.5,
        "difficulty": "pass_rate",
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_steps": steps,
        "max_completion_length": 32,
        "max_stage_tokens": 8,
        "lora": lora,
        "report_to": ["none"],
        "progress": False,
        "save_steps": 0,
        "save_total_limit": 1,
        "output_dir": str(out),
        "seed": seed,
    }


def configs(
    model: str, *, steps: int, root: Path, lora: bool, seed: int, overrides: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The ILR run and the token-matched single-agent GRPO run (``overrides`` go to both)."""
    ilr = {**base_config(model, steps=steps, out=root / "ilr", lora=lora, seed=seed), **(overrides or {})}
    ilr.update(models=[model, model], method="ilr", abilities=[0.0, 0.0])
    grpo = {**base_config(model, steps=steps, out=root / "grpo", lora=lora, seed=seed), **(overrides or {})}
    extra = 2 * ilr["max_stage_tokens"] // ilr["num_generations"]
    grpo["max_completion_length"] = ilr["max_completion_length"] + extra
    return {"ilr": ilr, "grpo": grpo}


def force_tokens(tokens: int, vllm: bool = False) -> None:
    """Make every generate call in this child produce exactly its max_new_tokens (EOS held back until then).

    A real model stops early, and differently in the two methods; forcing lengths keeps the comparison at
    equal generated tokens. ILR's sampler reads the model's generation_config, TRL's reads generation_kwargs;
    both get ``min_new_tokens`` >= every call's max_new_tokens (generation then stops at the max).
    """
    from baselines import single_agent
    from ilr_agents import grpo_config, model_loading, trainer_factory, training

    if vllm:  # vLLM's name for it, on both sides: TRL's generation_kwargs and our VLLMPolicy's extras
        from ilr_agents.policies import VLLMPolicy

        VLLMPolicy.extra_sampling = {"min_tokens": tokens}
    load, args = model_loading.load_model, grpo_config.grpo_args
    key = "min_tokens" if vllm else "min_new_tokens"

    def load_model(*a: Any, **k: Any) -> Any:
        model, tokenizer = load(*a, **k)
        model.generation_config.min_new_tokens = tokens
        return model, tokenizer

    def grpo_args(*a: Any, **k: Any) -> Any:
        built = args(*a, **k)
        built.generation_kwargs = {**(built.generation_kwargs or {}), key: tokens}
        return built

    # this bench child only; patched where they are looked up
    training.load_model = single_agent.load_model = load_model
    trainer_factory.grpo_args = grpo_args


def child_main(config_path: str) -> int:
    """Run one training in this process, recording when every trainer starts each step."""
    import time

    from transformers.trainer_callback import CallbackHandler

    from experiments.pipeline.methods import train
    from ilr_agents.config import ILRConfig

    data = json.loads(Path(config_path).read_text())
    force_tokens(data.pop(FORCE_KEY), vllm=data.get("generation_backend") == "vllm")
    stamps: dict[str, list[float]] = {}
    begin = CallbackHandler.on_step_begin

    def on_step_begin(self: Any, args: Any, state: Any, control: Any) -> Any:
        stamps.setdefault(Path(args.output_dir).name, []).append(time.perf_counter())
        return begin(self, args, state, control)

    CallbackHandler.on_step_begin = on_step_begin  # patched in this bench child process only
    train(ILRConfig.from_dict(data))
    Path(data["output_dir"], STAMPS_FILE).write_text(json.dumps(stamps))
    return 0


def run_child(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """One training process; returns its per-trainer step durations and its peak RSS (MiB)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder.with_suffix(".json")
    path.write_text(
        json.dumps({**config, FORCE_KEY: max(config["max_completion_length"], config["max_stage_tokens"])})
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.benchmarks.training_overhead", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    output = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"training child failed (exit {proc.returncode}): {output[-2000:]}")
    stamps = json.loads((Path(config["output_dir"]) / STAMPS_FILE).read_text())
    durations = {agent: [b - a for a, b in itertools.pairwise(times)] for agent, times in stamps.items()}
    return {"durations": durations, "peak_rss_mib": usage.ru_maxrss / 1024}


def step_time(durations: dict[str, list[float]], method: str) -> float:
    """Median seconds of one step (first dropped): one ILR cycle (all agents) or one agent's GRPO step."""
    series = durations["agent_0"]
    kept = series[1:] if len(series) > 1 else series
    if not kept:
        raise RuntimeError(f"{method} run recorded no steps; raise max_steps")
    return statistics.median(kept)


def loss_tokens(folder: Path) -> float:
    """Median tokens (prompt + completion) through agent_0's loss per step, from TRL's ``num_tokens`` log."""
    totals = [
        json.loads(line)["num_tokens"]
        for line in (folder / "metrics.jsonl").read_text().splitlines()
        if '"num_tokens"' in line and json.loads(line).get("agent") == "agent_0"
    ]
    return (
        statistics.median(b - a for a, b in itertools.pairwise(totals)) if len(totals) > 1 else float("nan")
    )


def run(ctx: BenchContext) -> CaseResult:
    return run_variant(ctx, model="tiny", lora=False, title=TITLE, name=NAME, steps=5, reps=2)


def run_variant(
    ctx: BenchContext,
    *,
    model: str,
    lora: bool,
    title: str,
    name: str,
    steps: int,
    reps: int,
    overrides: dict[str, Any] | None = None,
) -> CaseResult:
    result = CaseResult(name, title, "s/step", "ILR step / (2 x GRPO step)", "<=", 1.15)
    if ctx.quick:
        model, steps = "tiny", 3
    ilr_times, grpo_times, ilr_rss, grpo_rss, ilr_tok, grpo_tok = [], [], [], [], [], []
    durations: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ilr-bench-train-") as tmp:
        for rep in range(ctx.reps(full=reps, quick=1)):
            cfgs = configs(
                model, steps=steps, root=Path(tmp) / f"r{rep}", lora=lora, seed=ctx.seed, overrides=overrides
            )
            ilr = run_child(cfgs["ilr"], Path(tmp) / f"r{rep}" / "ilr")
            grpo = run_child(cfgs["grpo"], Path(tmp) / f"r{rep}" / "grpo")
            ilr_times.append(step_time(ilr["durations"], "ilr"))
            grpo_times.append(2 * step_time(grpo["durations"], "grpo"))
            durations.append({"ilr": ilr["durations"], "grpo": grpo["durations"]})
            ilr_rss.append(ilr["peak_rss_mib"])
            grpo_rss.append(grpo["peak_rss_mib"])
            ilr_tok.append(loss_tokens(Path(cfgs["ilr"]["output_dir"])))
            grpo_tok.append(loss_tokens(Path(cfgs["grpo"]["output_dir"])))
    result.ours, result.reference = Stat.of(ilr_times), Stat.of(grpo_times)
    result.ratio = Stat.of(ratios(ilr_times, grpo_times))
    memory = {"ilr_2_agents_peak_rss_mib": Stat.of(ilr_rss), "grpo_1_agent_peak_rss_mib": Stat.of(grpo_rss)}
    tokens = {"ilr_per_agent_step": statistics.median(ilr_tok), "grpo_per_step": statistics.median(grpo_tok)}
    result.details = {
        "model": model,
        "lora": lora,
        "steps_per_run": steps,
        "configs": cfgs,
        "memory": memory,
        "step_durations": durations,
        "memory_ratio": statistics.median(ratios(ilr_rss, grpo_rss)),
        "loss_tokens": tokens,
    }
    result.notes.append(
        f"{model}{' (LoRA)' if lora else ''}, {steps} steps per run (first dropped), n=4, 2 questions/step; "
        f"ILR turns {cfgs['ilr']['max_stage_tokens']}+{cfgs['ilr']['max_stage_tokens']} + final "
        f"{cfgs['ilr']['max_completion_length']} tokens, GRPO answers "
        f"{cfgs['grpo']['max_completion_length']} tokens (equal generated tokens per agent)"
    )
    result.notes.append(
        f"tokens through the loss per agent and step (prompt + completion, TRL's num_tokens): ILR "
        f"{tokens['ilr_per_agent_step']:.0f} vs GRPO {tokens['grpo_per_step']:.0f} "
        f"(x{tokens['ilr_per_agent_step'] / tokens['grpo_per_step']:.2f}): the fusion prompt carries "
        "the question, every idea and every analysis; both arms read each group's prompt once in the "
        "loss (shared_prompt_forward)"
    )
    result.notes.append(
        f"peak RSS: ILR 2 agents {memory['ilr_2_agents_peak_rss_mib'].median:.0f} MiB vs GRPO 1 agent "
        f"{memory['grpo_1_agent_peak_rss_mib'].median:.0f} MiB (x{result.details['memory_ratio']:.2f})"
    )
    result.notes.append(
        "both generate through TRL's vLLM engines (generation_backend: vllm, weight sync every step)"
        if (overrides or {}).get("generation_backend") == "vllm"
        else "the GRPO step generates through TRL's own transformers path, the ILR step through "
        "ilr_agents' TransformersPolicy (log-probs returned with the samples, shared prefill)"
    )
    result.judge()
    return result


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1]))
