"""The shared-prompt loss forward gives TRL's log-probs, entropies and gradients, reading the prompt once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("trl")

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from ilr_agents.shared_prompt import SharedPromptGRPOTrainer

_TRAINERS: dict[str, SharedPromptGRPOTrainer] = {}


def trainer_for(model_name: str, lora: bool) -> SharedPromptGRPOTrainer:
    key = f"{model_name}-{lora}"
    if key not in _TRAINERS:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ilr_agents.models import resolve_model

        path = resolve_model(model_name)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
        peft = None
        if lora:
            from peft import LoraConfig

            peft = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        args = GRPOConfig(
            output_dir=str(Path("/tmp") / f"ilr-shared-prompt-{key}"),
            use_cpu=True,
            report_to="none",
            per_device_train_batch_size=4,
            num_generations=2,
            max_completion_length=8,
            temperature=0.7,
            gradient_checkpointing=False,
            bf16=False,
        )
        _TRAINERS[key] = SharedPromptGRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=lambda completions, **kw: [0.0] * len(completions),
            args=args,
            train_dataset=Dataset.from_list([{"prompt": "hi"}] * 4),
            peft_config=peft,
        )
    return _TRAINERS[key]


def batch(
    prompt_lens: list[int], repeats: int, completion_len: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts, each repeated ``repeats`` times, + right-padded completions (GRPO's layout)."""
    gen = torch.Generator().manual_seed(seed)
    width = max(prompt_lens)
    rows, masks = [], []
    for length in prompt_lens:
        prompt = torch.randint(5, 200, (length,), generator=gen)
        for _ in range(repeats):
            done = int(torch.randint(1, completion_len + 1, (1,), generator=gen))
            completion = torch.randint(5, 200, (completion_len,), generator=gen)
            ids = torch.cat([torch.zeros(width - length, dtype=torch.long), prompt, completion])
            mask = torch.cat(
                [
                    torch.zeros(width - length),
                    torch.ones(length),
                    torch.ones(done),
                    torch.zeros(completion_len - done),
                ]
            ).long()
            rows.append(ids)
            masks.append(mask)
    return torch.stack(rows), torch.stack(masks)


def both(trainer: SharedPromptGRPOTrainer, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> list[Any]:
    out = []
    for shared in (True, False):
        trainer.model.zero_grad(set_to_none=True)
        trainer.shared_prompt_forward = shared
        logps, ent, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, mask, keep, compute_entropy=True
        )
        (logps * mask[:, -keep:]).sum().backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        out.append((logps.detach(), ent.detach(), grads))
    trainer.shared_prompt_forward = True
    return out


@pytest.mark.parametrize(("model_name", "lora"), [("tiny", False), ("tiny", True), ("tiny-llama", False)])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompt_lens=st.lists(st.integers(min_value=2, max_value=24), min_size=1, max_size=3),
    repeats=st.integers(min_value=2, max_value=4),
    completion_len=st.integers(min_value=1, max_value=6),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_matches_trl_forward_and_gradients(
    model_name: str, lora: bool, prompt_lens: list[int], repeats: int, completion_len: int, seed: int
) -> None:
    trainer = trainer_for(model_name, lora)
    ids, mask = batch(prompt_lens, repeats, completion_len, seed)
    (lp_s, ent_s, g_s), (lp_t, ent_t, g_t) = both(trainer, ids, mask, completion_len)
    valid = mask[:, -completion_len:].bool()
    assert torch.allclose(lp_s[valid], lp_t[valid], atol=1e-4)
    assert torch.allclose(ent_s[valid], ent_t[valid], atol=1e-4)
    assert g_s.keys() == g_t.keys() and g_s
    for name, grad in g_t.items():  # fp32: equal up to summation order
        assert (g_s[name] - grad).abs().max() <= 1e-5 * max(1.0, grad.abs().max().item()), name


def test_prompt_is_read_once_per_group() -> None:
    trainer = trainer_for("tiny", False)
    ids, mask = batch([10, 16], repeats=4, completion_len=5, seed=1)
    seen: list[tuple[int, int]] = []
    backbone = trainer.model.model
    handle = backbone.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 5)
    finally:
        handle.remove()
    assert seen == [
        (2, 15),
        (8, 6),
    ]  # 2 distinct prompts minus their last token, then 8 tails of 1 + 5 tokens


def test_batches_without_repeats_use_trls_forward() -> None:
    trainer = trainer_for("tiny", False)
    ids, mask = batch([6, 9, 12], repeats=1, completion_len=3, seed=2)
    assert trainer._prompt_groups(ids[:, :-3], mask[:, :-3]) is None
    shared, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 3)
    plain, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(trainer, trainer.model, ids, mask, 3)
    assert torch.equal(shared, plain)
