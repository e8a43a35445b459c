"""Case 5b — training overhead with a real model: SmolLM2-135M-Instruct with LoRA adapters.

Same measurement as ``training_overhead`` (separate processes, step-begin stamps, equal generated tokens per
agent), on the model and adapter setup that ``make demo`` trains; one repeat, since a run takes minutes.
"""

from __future__ import annotations

from experiments.benchmarks.common import BenchContext, CaseResult
from experiments.benchmarks.training_overhead import run_variant

NAME = "training_overhead_lora"
TITLE = "Training overhead (ILR 2-agent step vs 2 x GRPO step, SmolLM2-135M LoRA)"


def run(ctx: BenchContext) -> CaseResult:
    return run_variant(ctx, model="smollm2-135m", lora=True, title=TITLE, name=NAME, steps=3, reps=1)
