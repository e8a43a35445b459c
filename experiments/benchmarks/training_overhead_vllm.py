"""Case 5c — training overhead with both methods generating on vLLM (``generation_backend: vllm``).

Same measurement as ``training_overhead`` (separate processes, step-begin stamps, equal generated tokens per
agent, forced with vLLM's ``min_tokens``), SmolLM2-135M with LoRA as in ``make demo``, but every trainer
generates through its own TRL-built vLLM engine (CPU build here), weights synced after every step.
"""

from __future__ import annotations

from experiments.benchmarks.common import BenchContext, CaseResult
from experiments.benchmarks.training_overhead import run_variant
from experiments.benchmarks.vllm_rollouts import vllm_missing

NAME = "training_overhead_vllm"
TITLE = "Training overhead on vLLM (ILR 2-agent step vs 2 x GRPO step, SmolLM2-135M LoRA)"


def run(ctx: BenchContext) -> CaseResult:
    why = vllm_missing()
    if why is not None:
        result = CaseResult(NAME, TITLE, "s/step", "ILR step / (2 x GRPO step)", "<=", 1.15, status="skipped")
        result.notes.append(f"skipped: {why}")
        return result
    overrides = {"generation_backend": "vllm", "vllm_max_model_length": 1024}
    return run_variant(
        ctx, model="smollm2-135m", lora=True, title=TITLE, name=NAME, steps=3, reps=1, overrides=overrides
    )
