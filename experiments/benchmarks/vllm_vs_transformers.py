"""Case — training-shaped Idea3 rollouts on vLLM vs on transformers, same episodes and settings (tokens/s).

Both arms play the same E Idea3 episodes with the n fusion samples a training step draws, log-probs on (the
trainer needs them), one policy shared by both agents: ``VLLMPolicy`` vs ``TransformersPolicy`` (shared
prefill and prefix cache on). Each arm's tokens are counted from its completions; the rate is tokens/s, so
the comparison is at equal work per token. This is the measurement behind the CPU presets' default
``generation_backend``.
"""

from __future__ import annotations

from experiments.benchmarks import vllm_rollouts
from experiments.benchmarks.common import (
    BenchContext,
    CaseResult,
    idea3_episodes,
    interleave,
    rate_ratio,
    timed,
)

NAME = "vllm_vs_transformers"
TITLE = "Rollouts on vLLM vs transformers (Idea3, n fusion samples, log-probs; tokens/s)"
MODEL = vllm_rollouts.MODEL
EPISODES = 4
TOKENS = 24
FINAL_N = 4


def run(ctx: BenchContext) -> CaseResult:
    result = CaseResult(NAME, TITLE, "tokens/s", "vLLM / transformers throughput", ">=", 1.0)
    why = vllm_rollouts.vllm_missing()
    if why is not None:
        result.status = "skipped"
        result.notes.append(f"skipped: {why}")
        return result
    from ilr_agents.policies import SamplingParams, TransformersPolicy, VLLMPolicy
    from ilr_agents.rollout import run_episodes

    episodes, tokens = (2, 8) if ctx.quick else (EPISODES, TOKENS)
    envs, seeds = idea3_episodes(ctx, episodes)
    params = SamplingParams(max_new_tokens=tokens, temperature=1.0, seed=ctx.seed)
    policies = {
        "vllm": VLLMPolicy(vllm_rollouts.engine(ctx), seed=ctx.seed),
        "transformers": TransformersPolicy(MODEL, seed=ctx.seed),
    }

    def arm(name: str):
        policy = policies[name]
        records = run_episodes(envs, [policy, policy], seeds=seeds, params=params, final_n=FINAL_N)
        return vllm_rollouts.generated_tokens(records) + sum(
            len(s.completion_ids or ())
            for r in records
            for samples in r.final_samples.values()
            for s in samples[1:]
        )

    for policy in policies.values():  # warm-up: first-call allocations, not a whole arm
        policy.generate([[{"role": "user", "content": "Hello"}]], params.replace(max_new_tokens=4))
    runs = interleave({k: (lambda k=k: timed(lambda: arm(k))) for k in policies}, ctx.reps(full=2))
    raw_figures = rate_ratio(result, runs, "vllm", "transformers")
    result.details = {
        "episodes": episodes,
        "tokens_per_turn": tokens,
        "final_n": FINAL_N,
        "model": MODEL,
        **raw_figures,
    }
    result.notes.append(
        f"{MODEL} fp32, E={episodes} episodes, turns <= {tokens} tokens, {FINAL_N} fusion samples per agent"
    )
    vllm_rollouts.release_engine()
    result.judge()
    return result
