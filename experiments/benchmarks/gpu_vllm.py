"""Case — GPU: the ``vllm_rollouts`` measurement (ilr's Idea3 rollouts vs raw vLLM) at GPU sizes.

Runs only where ``torch.cuda.is_available()`` and vLLM imports; anywhere else the case is recorded as
skipped with the command that runs it.
"""

from __future__ import annotations

from experiments.benchmarks import vllm_rollouts
from experiments.benchmarks.common import BenchContext, CaseResult

NAME = "gpu_vllm"
TITLE = "GPU: vLLM Idea3 rollouts vs raw vLLM (tokens/s)"
COMMAND = (
    "make install VLLM_BUILD=vllm && ILR_DATA_DIR=<data folder> "
    ".venv/bin/ilr bench --only gpu_vllm --out bench"
)
EPISODES = 256
TOKENS = 256


def gpu_ready() -> str | None:
    """None when the case can run, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no GPU (torch.cuda.is_available() is False)"
    return vllm_rollouts.vllm_missing()


def run(ctx: BenchContext) -> CaseResult:
    result = CaseResult(NAME, TITLE, "tokens/s", "Idea3 rollout / raw vLLM throughput", ">=", 0.85)
    why = gpu_ready()
    if why is not None:
        result.status = "skipped"
        result.notes.append(f"skipped: {why}. Run on a GPU machine with vLLM installed: `{COMMAND}`")
        result.details = {"command": COMMAND}
        return result
    episodes, tokens = (8, 16) if ctx.quick else (EPISODES, TOKENS)
    return vllm_rollouts.measure(ctx, result, episodes, tokens, repeats=ctx.reps(full=3))
