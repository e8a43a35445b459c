"""The performance benchmark suite behind `ilr bench`: one module per case, in run order.

Each case module defines ``NAME``, ``TITLE`` and ``run(ctx: BenchContext) -> CaseResult``. Light cases run
first so a torch-heavy process does not slow the fork-based reference harnesses.
"""

from __future__ import annotations

CASES: dict[str, str] = {
    "math_grading": "experiments.benchmarks.math_grading",
    "code_sandbox": "experiments.benchmarks.code_sandbox",
    "env_overhead": "experiments.benchmarks.env_overhead",
    "batched_rollouts": "experiments.benchmarks.batched_rollouts",
    "training_overhead": "experiments.benchmarks.training_overhead",
    "training_overhead_lora": "experiments.benchmarks.training_overhead_lora",
    "vllm_rollouts": "experiments.benchmarks.vllm_rollouts",
    "vllm_vs_transformers": "experiments.benchmarks.vllm_vs_transformers",
    "training_overhead_vllm": "experiments.benchmarks.training_overhead_vllm",
    "gpu_vllm": "experiments.benchmarks.gpu_vllm",
}
