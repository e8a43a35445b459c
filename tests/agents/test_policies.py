"""Policy contract, ScriptedPolicy, and TransformersPolicy on the tiny random models."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilr_agents.policies import Completion, Policy, SamplingParams, ScriptedPolicy, TransformersPolicy

CHATS = [
    [{"role": "user", "content": "What is 2+3?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Let x = 4. Solve 2x + 1 = 9 and put the answer in \\boxed{}."},
    ],
    [{"role": "user", "content": "hi"}],
]
GREEDY = SamplingParams(max_new_tokens=10, temperature=0)


@pytest.fixture(scope="module")
def tiny() -> TransformersPolicy:
    return TransformersPolicy("tiny", seed=3)


def forward_logprobs(policy: TransformersPolicy, c: Completion, temperature: float = 1.0) -> torch.Tensor:
    ids = torch.tensor([c.prompt_ids + c.completion_ids])
    with torch.no_grad():
        logits = policy.model(ids).logits[0, len(c.prompt_ids) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.completion_ids)[:, None])[:, 0]


# ---- contract types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [{"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_k": -1}, {"n": 0}]
)
def test_sampling_params_reject_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SamplingParams(**bad)


def test_sampling_params_replace_keeps_other_fields() -> None:
    p = SamplingParams(max_new_tokens=7, temperature=0.5).replace(n=4)
    assert (p.max_new_tokens, p.temperature, p.n, p.top_k) == (7, 0.5, 4, 0)


def test_scripted_policy_cycles_counts_and_satisfies_protocol() -> None:
    policy = ScriptedPolicy(["a", "b", "c"])
    out = policy.generate(CHATS[:2], SamplingParams(n=2))
    assert [[c.text for c in g] for g in out] == [["a", "b"], ["c", "a"]]
    assert policy.calls == 1 and policy.chats_seen == [CHATS[:2]]
    assert isinstance(policy, Policy)


def test_scripted_policy_callable_sees_the_chat() -> None:
    policy = ScriptedPolicy(lambda chat: chat[-1]["content"].upper())
    assert policy.generate([CHATS[2]], SamplingParams())[0][0].text == "HI"


@pytest.mark.parametrize("bad", ["text", [], [1]])
def test_scripted_policy_rejects_bad_scripts(bad: object) -> None:
    with pytest.raises(TypeError):
        ScriptedPolicy(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["hi", [[]], [[{"content": "no role"}]], [{"role": "user", "content": "x"}]])
def test_bad_chats_are_rejected_with_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        ScriptedPolicy(["x"]).generate(bad, SamplingParams())  # type: ignore[arg-type]


# ---- transformers ------------------------------------------------------------------------------------


def test_left_padded_batch_matches_single_calls(tiny: TransformersPolicy) -> None:
    batch = tiny.generate(CHATS, GREEDY)
    assert len({len(c[0].prompt_ids) for c in batch}) > 1  # the batch really was padded
    for chat, group in zip(CHATS, batch):
        alone = tiny.generate([chat], GREEDY)[0][0]
        assert group[0].completion_ids == alone.completion_ids
        assert group[0].text == alone.text
        assert max(abs(a - b) for a, b in zip(group[0].logprobs, alone.logprobs)) < 1e-4


@pytest.mark.parametrize("model", ["tiny", "tiny-llama"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(repeats=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=5))
def test_shared_prefill_matches_plain_generate(model: str, repeats: list[int]) -> None:
    """Unpadded per-prompt prefill + batched decoding = HF's padded generate, token for token (greedy)."""
    shared, plain = _prefill_pair(model)
    chats = [[{"role": "user", "content": "Add 2 and 3. " * k + "Answer:"}] for k in repeats]
    a, b = shared.generate(chats, GREEDY), plain.generate(chats, GREEDY)
    for x, y in zip(a, b):
        assert x[0].completion_ids == y[0].completion_ids
        assert x[0].prompt_ids == y[0].prompt_ids
        assert max(abs(u - v) for u, v in zip(x[0].logprobs, y[0].logprobs)) < 1e-4


def test_shared_prefill_samples_n_from_one_prompt_read() -> None:
    shared, _ = _prefill_pair("tiny")
    calls: list[int] = []

    def count(module, args, kwargs):
        ids = kwargs.get("input_ids")
        calls.append(0 if ids is None else int(ids.shape[-1]))

    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=4, seed=5)
    handle = shared.model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        out = shared.generate(CHATS, params)
    finally:
        handle.remove()
    prompt_lengths = sorted(len(g[0].prompt_ids) - 1 for g in out)
    assert sorted(c for c in calls if c > 1) == prompt_lengths  # each prompt read once, not n times
    for group in out:
        assert len(group) == 4
        for c in group:
            assert torch.allclose(torch.tensor(c.logprobs), forward_logprobs(shared, c, 1.0), atol=1e-4)
    assert shared.generate(CHATS, params)[0][0].completion_ids == out[0][0].completion_ids  # seeded


def test_unknown_prefill_mode_is_a_clear_error(tiny: TransformersPolicy) -> None:
    with pytest.raises(ValueError, match="prefill='paged'"):
        TransformersPolicy(tiny.model, tiny.tokenizer, prefill="paged")


_PAIRS: dict[str, tuple[TransformersPolicy, TransformersPolicy]] = {}


def _prefill_pair(model: str) -> tuple[TransformersPolicy, TransformersPolicy]:
    if model not in _PAIRS:
        shared = TransformersPolicy(model, prefill="shared")
        _PAIRS[model] = (shared, TransformersPolicy(shared.model, shared.tokenizer, prefill="batched"))
    return _PAIRS[model]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_match_a_forward_pass(tiny: TransformersPolicy, temperature: float) -> None:
    out = tiny.generate(CHATS, SamplingParams(max_new_tokens=12, temperature=temperature, n=2, seed=1))
    for group in out:
        assert len(group) == 2
        for c in group:
            assert len(c.logprobs) == len(c.completion_ids) > 0
            assert all(math.isfinite(x) and x <= 0 for x in c.logprobs)
            expected = forward_logprobs(tiny, c, temperature)
            assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-4)


def test_prompt_ids_are_the_chat_template(tiny: TransformersPolicy) -> None:
    c = tiny.generate([CHATS[0]], GREEDY)[0][0]
    text = tiny.tokenizer.apply_chat_template(CHATS[0], add_generation_prompt=True, tokenize=False)
    assert c.prompt_ids == tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny.tokenizer.decode(c.prompt_ids).endswith("<|im_start|>assistant\n")


def test_seed_reproducible_and_global_rng_untouched(tiny: TransformersPolicy) -> None:
    params = SamplingParams(max_new_tokens=8, n=3, seed=42)
    before = torch.get_rng_state()
    first = tiny.generate(CHATS, params)
    second = tiny.generate(CHATS, params)
    assert torch.equal(before, torch.get_rng_state())
    ids = lambda out: [[c.completion_ids for c in g] for g in out]
    assert ids(first) == ids(second)
    assert ids(tiny.generate(CHATS, params.replace(seed=43))) != ids(first)
    assert len({tuple(c.completion_ids) for c in first[0]}) > 1  # n samples differ from each other


def test_unseeded_calls_follow_the_policy_seed() -> None:
    params = SamplingParams(max_new_tokens=6)
    a, b = TransformersPolicy("tiny", seed=9), TransformersPolicy("tiny", seed=9)
    assert [a.generate(CHATS, params)[i][0].completion_ids for i in range(3)] == [
        b.generate(CHATS, params)[i][0].completion_ids for i in range(3)
    ]


@given(n=st.integers(2, 64))
def test_greedy_with_several_samples_is_rejected_before_any_backend_runs(n: int) -> None:
    with pytest.raises(ValueError, match=rf"n={n} with temperature=0.*temperature > 0"):
        GREEDY.replace(n=n)
    assert SamplingParams(temperature=0.0, n=1).greedy


def test_one_generate_call_per_batch_and_splitting_only_when_asked(monkeypatch) -> None:
    policy = TransformersPolicy("tiny")
    calls: list[int] = []
    original = policy.model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(policy.model, "generate", counting)
    whole = policy.generate(CHATS, GREEDY)
    assert calls == [3]
    policy.max_batch_size = 2
    split = policy.generate(CHATS, GREEDY)
    assert calls == [3, 2, 1]
    assert [g[0].completion_ids for g in whole] == [g[0].completion_ids for g in split]


def test_completion_is_cut_after_first_eos(tiny: TransformersPolicy) -> None:
    eos, pad = tiny.eos_ids[0], tiny.pad_id
    c = tiny._completion([1, 2], [7, 8, eos, pad, pad], [-0.1, -0.2, -0.3, -9.0, -9.0])
    assert c.completion_ids == [7, 8, eos] and c.logprobs == [-0.1, -0.2, -0.3] and c.finish_reason == "stop"
    assert c.text == tiny.tokenizer.decode([7, 8])
    long = tiny._completion([1], [7, 8], None)
    assert long.finish_reason == "length" and long.logprobs is None


def test_length_finish_reason_when_budget_runs_out(tiny: TransformersPolicy) -> None:
    out = tiny.generate(CHATS, SamplingParams(max_new_tokens=3, temperature=0))
    for group in out:
        c = group[0]
        assert len(c.completion_ids) <= 3
        assert c.finish_reason == ("stop" if c.completion_ids[-1] in tiny.eos_ids else "length")


def test_live_model_object_and_training_mode_restored(tiny: TransformersPolicy) -> None:
    live = TransformersPolicy(tiny.model, tiny.tokenizer)
    tiny.model.train()
    try:
        out = live.generate([CHATS[0]], GREEDY)[0][0]
        assert tiny.model.training
    finally:
        tiny.model.eval()
    assert out.completion_ids == tiny.generate([CHATS[0]], GREEDY)[0][0].completion_ids
    assert live.model is tiny.model


def test_second_family_llama_template_has_one_bos() -> None:
    policy = TransformersPolicy("tiny-llama")
    c = policy.generate([CHATS[1]], GREEDY)[0][0]
    bos = policy.tokenizer.bos_token_id
    assert c.prompt_ids[0] == bos and c.prompt_ids.count(bos) == 1
    assert torch.allclose(torch.tensor(c.logprobs), forward_logprobs(policy, c), atol=1e-4)


def test_lora_adapter_is_applied(tiny: TransformersPolicy, tmp_path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ilr_agents.models import resolve_model

    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny"))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    unmerged = get_peft_model(base, config)
    unmerged.save_pretrained(tmp_path / "adapter")
    adapted = TransformersPolicy("tiny", adapter=str(tmp_path / "adapter"))
    assert not any("lora" in name for name, _ in adapted.model.named_modules())  # merged: plain layers
    a = adapted.generate(CHATS, GREEDY.replace(max_new_tokens=4))
    b = tiny.generate(CHATS, GREEDY.replace(max_new_tokens=4))
    assert [g[0].logprobs for g in a] != [g[0].logprobs for g in b]
    for group in a:  # the merged weights compute what base + adapter computes
        c = group[0]
        ids = torch.tensor([c.prompt_ids + c.completion_ids])
        with torch.no_grad():
            logits = unmerged.eval()(ids).logits[0, len(c.prompt_ids) - 1 : -1].float()
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.completion_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-4)


def test_a_live_lora_model_decodes_merged_and_gets_its_exact_weights_back(tiny: TransformersPolicy) -> None:
    """What a trainer's rollout does: a PEFT model with unmerged adapters, sampled between optimizer steps."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    from ilr_agents.models import resolve_model

    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny"))
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    live = get_peft_model(base, config)
    layers = [m for m in live.modules() if isinstance(m, LoraLayer)]
    before = [m.get_base_layer().weight.detach().clone() for m in layers]
    merged = TransformersPolicy(live, tiny.tokenizer)
    separate = TransformersPolicy(live, tiny.tokenizer, merge_lora=False)
    sampling = SamplingParams(max_new_tokens=6, temperature=1.0, n=3, seed=11)
    a, b = merged.generate(CHATS, sampling), separate.generate(CHATS, sampling)
    assert [[c.completion_ids for c in g] for g in a] == [[c.completion_ids for c in g] for g in b]
    for ga, gb in zip(a, b):
        for ca, cb in zip(ga, gb):
            assert torch.allclose(torch.tensor(ca.logprobs), torch.tensor(cb.logprobs), atol=1e-4)
    assert not any(m.merged for m in layers)  # adapters are separate layers again, trainable as before
    for m, w in zip(layers, before):  # bit for bit: no (W + d) - d residue left in the frozen weights
        assert torch.equal(m.get_base_layer().weight, w)


def test_tokenizer_without_chat_template_is_a_clear_error(tiny: TransformersPolicy) -> None:
    from transformers import AutoTokenizer

    from ilr_agents.models import resolve_model
    from ilr_agents.policies import PolicyError

    tok = AutoTokenizer.from_pretrained(resolve_model("tiny"))
    tok.chat_template = None
    with pytest.raises(PolicyError, match="chat template"):
        TransformersPolicy(tiny.model, tok)


def _forward_lengths(policy: TransformersPolicy) -> tuple[list[int], Any]:
    seen: list[int] = []
    handle = policy.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(int(kwargs["input_ids"].shape[-1])), with_kwargs=True
    )
    return seen, handle


def test_prefix_cache_prefills_only_the_new_part_and_changes_nothing() -> None:
    shared, plain = _prefill_pair("tiny")
    first = [{"role": "user", "content": "Problem: add 2 and 3. " * 4}]
    second = [first[0] | {"content": first[0]["content"] + "Your idea: five. Now check it."}]
    expected = [plain.generate([chat], GREEDY)[0][0] for chat in (first, second)]
    seen, handle = _forward_lengths(shared)
    try:
        with shared.prefix_cache():
            got = [shared.generate([chat], GREEDY)[0][0] for chat in (first, second)]
    finally:
        handle.remove()
    prefills = [n for n in seen if n > 1]
    full = [len(c.prompt_ids) - 1 for c in got]
    shared_part = len(os.path.commonprefix([got[0].prompt_ids, got[1].prompt_ids]))
    assert prefills[0] == full[0] and prefills[1] == full[1] - min(shared_part, full[0]) < full[1]
    for a, b in zip(got, expected):
        assert a.completion_ids == b.completion_ids
        assert max(abs(u - v) for u, v in zip(a.logprobs, b.logprobs)) < 1e-4


def test_prefix_cache_is_scoped_and_keeps_only_the_previous_call() -> None:
    shared, _ = _prefill_pair("tiny")
    chat = [{"role": "user", "content": "Problem: multiply 4 by 6, twice over. " * 3}]
    seen, handle = _forward_lengths(shared)
    try:
        shared.generate([chat], GREEDY)
        shared.generate([chat], GREEDY)  # no block: nothing is reused
        with shared.prefix_cache():
            shared.generate([chat], GREEDY)
            shared.generate([chat], GREEDY)  # the previous call's prompt covers it: no prefill at all
            other = [{"role": "user", "content": "Something else entirely."}]
            shared.generate([other], GREEDY)
            shared.generate([other], GREEDY)  # `chat` is now two calls old and has been dropped
            shared.generate([chat], GREEDY)
    finally:
        handle.remove()
    prefills = [n for n in seen if n > 1]
    ids, other_ids = shared.encode_chat(chat)[:-1], shared.encode_chat(other)[:-1]
    template = len(os.path.commonprefix([ids, other_ids]))  # chat-template header both share
    assert prefills == [len(ids), len(ids), len(ids), len(other_ids) - template, len(ids) - template]
    assert shared._prefixes is None


@pytest.mark.parametrize("protocol", ["idea3", "debate"])
def test_rollouts_are_the_same_with_and_without_prefix_reuse(protocol: str) -> None:
    import ilr_env
    from ilr_agents.rollout import run_episodes

    shared, plain = _prefill_pair("tiny")
    questions = ilr_env.load_questions("math500", limit=6)
    params = SamplingParams(max_new_tokens=6, temperature=0)

    def play(policy: TransformersPolicy) -> list[Any]:
        envs = [
            ilr_env.make("math500", num_agents=2, protocol=protocol, mode=0.5, questions=questions)
            for _ in range(3)
        ]
        records = run_episodes(envs, [policy, policy], seeds=[0, 1, 2], params=params)
        return [[st.said[a].completion_ids for st in r.stages for a in sorted(st.said)] for r in records]

    assert play(shared) == play(plain)


def test_vllm_min_tokens_above_a_calls_maximum_means_that_maximum() -> None:
    """The training benchmark forces full-length turns with one ``min_tokens`` for every call; stage turns
    are shorter than answers, and vLLM refuses min_tokens > max_tokens."""
    pytest.importorskip("vllm")
    from types import SimpleNamespace

    from ilr_agents.policies import VLLMPolicy

    forced = SimpleNamespace(extra_sampling={"min_tokens": 32}, return_logprobs=True)
    short = VLLMPolicy._sampling_params(forced, SamplingParams(max_new_tokens=8, temperature=1.0), seed=1)
    long = VLLMPolicy._sampling_params(forced, SamplingParams(max_new_tokens=48, temperature=1.0), seed=1)
    assert (short.min_tokens, short.max_tokens) == (8, 8)
    assert (long.min_tokens, long.max_tokens) == (32, 48)


def test_one_factory_builds_what_a_spec_describes(tiny: TransformersPolicy, tmp_path) -> None:
    from ilr_agents.policies import PolicySpec, build_policy

    policy = build_policy(PolicySpec("tiny", seed=3, name="judge"))
    assert isinstance(policy, TransformersPolicy) and policy.name == "judge"
    # the same model, seed and settings as the hand-built policy: the same greedy answers
    assert [c[0].text for c in policy.generate(CHATS, GREEDY)] == [
        c[0].text for c in tiny.generate(CHATS, GREEDY)
    ]
    assert all(c[0].logprobs is None for c in policy.generate(CHATS[:1], GREEDY))  # evaluation: no log-probs


def test_a_checkpoint_is_a_model_or_an_adapter_on_its_base(tmp_path) -> None:
    from ilr_agents.policies import PolicySpec

    ckpt = tmp_path / "checkpoint-3"
    assert PolicySpec.for_checkpoint("tiny", None, lora=True) == PolicySpec("tiny")
    assert PolicySpec.for_checkpoint("tiny", ckpt, lora=False) == PolicySpec(str(ckpt))
    assert PolicySpec.for_checkpoint("tiny", ckpt, lora=True, name="a") == PolicySpec(
        "tiny", adapter=str(ckpt), name="a"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "torch"}, "unknown policy backend 'torch'"),
        ({"backend": "openai"}, "needs base_url"),
    ],
)
def test_a_spec_that_cannot_load_fails_when_described(fields: dict, message: str) -> None:
    from ilr_agents.policies import PolicySpec, PolicySpecError

    with pytest.raises(PolicySpecError, match=message):
        PolicySpec("tiny", **fields)
