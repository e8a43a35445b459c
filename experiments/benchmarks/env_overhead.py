"""Case 1 — environment overhead: what the env, the rollout runner and grading cost next to generation.

Ours: full Idea3 episodes (2 agents, MATH-500, modes drawn with p = 0.5) played by ``run_episodes`` with
a zero-cost scripted policy whose messages are about as long as the generated ones and whose final answers
mix integer, fraction and symbolic forms (so grading takes both its fast path and math-verify). Reference:
SmolLM2-135M generating the same episodes' six turns (the prompts recorded from the scripted run, batched
per stage as the runner batches them) with every turn forced to ``TOKENS`` new tokens. The ratio is
env seconds per episode over generation seconds per episode; target < 2%.

``TOKENS`` = 32 is shorter than the CPU demo's answers (48) and far shorter than real runs' turns, so the
measured fraction is an upper bound on what the environment costs in practice.
"""

from __future__ import annotations

from typing import Any

from experiments.benchmarks.common import (
    BenchContext,
    CaseResult,
    Stat,
    idea3_episodes,
    interleave,
    profile_top,
    ratios,
    timed,
)

NAME = "env_overhead"
TITLE = "Env + grading overhead (Idea3, fraction of SmolLM2 generation)"
TOKENS = 32
_ANSWERS = ("7", "\\frac{3}{4}", "x^2 + 1", "12", "\\sqrt{2}", "(1, 2)")
_FILLER = (
    "Key idea: rewrite the expression, isolate the unknown and check every edge case before concluding. "
)


def scripted_message(chat: list[dict[str, str]]) -> str:
    """About 64 tokens of discussion ending in a boxed answer chosen from the prompt (deterministic)."""
    answer = _ANSWERS[sum(len(m["content"]) for m in chat) % len(_ANSWERS)]
    return _FILLER * 3 + f"So the answer is \\boxed{{{answer}}}."


def run(ctx: BenchContext) -> CaseResult:
    from ilr_agents.policies import SamplingParams, ScriptedPolicy, TransformersPolicy
    from ilr_agents.rollout import run_episodes
    from ilr_env.grading.verify_pool import get_pool

    result = CaseResult(NAME, TITLE, "s/episode", "env / generation time per episode", "<", 0.02)
    episodes, gen_episodes = (8, 1) if ctx.quick else (64, 1)
    model_name = "tiny" if ctx.quick else "smollm2-135m"
    tokens = 8 if ctx.quick else TOKENS
    envs, seeds = idea3_episodes(ctx, episodes)
    scripted = ScriptedPolicy(scripted_message, name="scripted")
    get_pool().warm()

    def play() -> list[Any]:
        return run_episodes(envs, [scripted, scripted], seeds=seeds)

    records = play()
    stage_chats = [
        [r.stages[s].seen[a] for r in records[:gen_episodes] for a in r.agents]
        for s in range(len(records[0].stages))
    ]
    policy = TransformersPolicy(model_name, return_logprobs=False, seed=ctx.seed)
    params = SamplingParams(max_new_tokens=tokens, temperature=1.0, seed=ctx.seed)
    policy.generate(stage_chats[-1], params.replace(max_new_tokens=2))  # warm-up: first-call allocations
    policy.model.generation_config.min_new_tokens = tokens  # every turn the same length in every repeat

    def generate() -> int:
        for chats in stage_chats:
            policy.generate(chats, params)
        return gen_episodes

    runs = interleave(
        {"env": lambda: timed(lambda: len(play())), "generation": lambda: timed(generate)}, ctx.reps(full=2)
    )
    env_spe = [1 / m.rate for m in runs["env"]]
    gen_spe = [1 / m.rate for m in runs["generation"]]
    result.ours, result.reference = Stat.of(env_spe), Stat.of(gen_spe)
    result.ratio = Stat.of(ratios(env_spe, gen_spe))
    prompt_tokens = [len(policy.encode_chat(c)) for chats in stage_chats for c in chats]
    result.details = {
        "episodes_per_repeat": episodes,
        "episodes_per_second": Stat.of([m.rate for m in runs["env"]]),
        "generation_model": model_name,
        "tokens_per_turn": tokens,
        "turns_per_episode": 6,
        "generation_episodes": gen_episodes,
        "generation_prompt_tokens": prompt_tokens,
        "final_n": 1,
    }
    result.notes.append(
        f"{episodes} episodes per repeat at {result.details['episodes_per_second'].median:.1f} "
        f"episodes/s (env, runner and grading); generation: {model_name}, {gen_episodes} episode(s) "
        f"x 6 turns x {tokens} tokens, batched per stage, prompts of {min(prompt_tokens)}-"
        f"{max(prompt_tokens)} tokens"
    )
    result.notes.append(
        "final_n = 1 on both sides; with a GRPO group of n, grading and final-stage generation both "
        "scale by about n, so the fraction changes little"
    )
    result.judge()
    if result.met is False:
        result.profile = profile_top(play)
    return result
