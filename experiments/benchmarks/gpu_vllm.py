"""Case 6 — GPU: Idea3 rollouts through ``VLLMPolicy`` vs raw vLLM generation of the same token count.

Runs only where ``torch.cuda.is_available()`` and vLLM imports; anywhere else the case is recorded as
skipped with the command that runs it. Ours: ``run_episodes`` over E envs with one VLLMPolicy shared by
both agents (3 batched generate calls, env and grading included). Reference: ``vllm.LLM.generate`` on the
same stage prompts (recorded from a warm-up rollout, chat-templated by vLLM), one call per stage, with the
same sampling settings. Both arms count the tokens they actually generated (log-probs off on both sides).
"""

from __future__ import annotations

from experiments.benchmarks.common import (
    BenchContext,
    CaseResult,
    Stat,
    interleave,
    profile_top,
    ratios,
    timed,
)

NAME = "gpu_vllm"
TITLE = "GPU: vLLM Idea3 rollouts vs raw vLLM (tokens/s)"
COMMAND = (
    "pip install -e '.[vllm]' && ILR_DATA_DIR=../shared/data .venv/bin/ilr bench --cases gpu_vllm --out bench"
)
MODEL = "smollm2-135m"
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
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        return f"vllm does not import ({exc}); install the 'vllm' extra"
    return None


def run(ctx: BenchContext) -> CaseResult:
    result = CaseResult(NAME, TITLE, "tokens/s", "Idea3 rollout / raw vLLM throughput", ">=", 0.85)
    why = gpu_ready()
    if why is not None:
        result.status = "skipped"
        result.notes.append(f"skipped: {why}. Run on a GPU machine with vLLM installed: `{COMMAND}`")
        result.details = {"command": COMMAND}
        return result
    return _measure(ctx, result)


def _measure(ctx: BenchContext, result: CaseResult) -> CaseResult:
    from vllm import SamplingParams as VSamplingParams

    import ilr_env
    from ilr_agents.policies import SamplingParams, VLLMPolicy
    from ilr_agents.rollout import run_episodes

    episodes, tokens = (8, 16) if ctx.quick else (EPISODES, TOKENS)
    questions = ilr_env.load_questions("math500", data_dir=ctx.data_dir)
    envs = [
        ilr_env.make("math500", num_agents=2, protocol="idea3", mode=0.5, questions=questions)
        for _ in range(episodes)
    ]
    policy = VLLMPolicy(MODEL, return_logprobs=False, seed=ctx.seed)
    llm = policy.llm
    seeds = [ctx.seed + e for e in range(episodes)]
    params = SamplingParams(max_new_tokens=tokens, temperature=1.0, seed=ctx.seed)
    raw_params = VSamplingParams(max_tokens=tokens, temperature=1.0, top_k=-1, seed=ctx.seed)
    records = run_episodes(envs, [policy, policy], seeds=seeds, params=params)
    stage_chats = [
        [r.stages[s].seen[a] for r in records for a in r.agents] for s in range(len(records[0].stages))
    ]

    def ours() -> int:
        out = run_episodes(envs, [policy, policy], seeds=seeds, params=params)
        return sum(len(e.completion_ids or ()) for r in out for st in r.stages for e in st.said.values())

    def raw() -> int:
        total = 0
        for chats in stage_chats:
            for o in llm.chat(chats, raw_params, use_tqdm=False):
                total += len(o.outputs[0].token_ids)
        return total

    runs = interleave({"ours": lambda: timed(ours), "raw": lambda: timed(raw)}, ctx.reps(full=3))
    rate_o, rate_r = [m.rate for m in runs["ours"]], [m.rate for m in runs["raw"]]
    result.ours, result.reference, result.ratio = (
        Stat.of(rate_o),
        Stat.of(rate_r),
        Stat.of(ratios(rate_o, rate_r)),
    )
    result.details = {
        "episodes": episodes,
        "tokens_per_turn": tokens,
        "model": MODEL,
        "tokens": {k: [m.units for m in v] for k, v in runs.items()},
    }
    result.notes.append(
        f"{MODEL}, E={episodes} episodes x 6 turns x {tokens} tokens, prompts recorded from a warm-up run"
    )
    result.judge()
    if result.met is False:
        result.profile = profile_top(ours)
    return result
