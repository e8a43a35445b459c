"""Model sizes without loading weights, and the per-GPU memory estimate the dry-run plan prints."""

from __future__ import annotations

import dataclasses

import pytest

from experiments.pipeline.memory import (
    GIB,
    KNOWN_CONFIGS,
    Architecture,
    TrainingShape,
    UnknownModelSizeError,
    architecture,
    estimate_memory,
)

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", sorted(KNOWN_CONFIGS))
def test_parameter_count_formula_matches_transformers_models(name):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    fields = dict(KNOWN_CONFIGS[name])
    kind = fields.pop("model_type")
    classifier = bool(fields.pop("architectures", None))
    config = AutoConfig.for_model(kind, **fields)
    auto = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
    with torch.device("meta"):  # shapes only: a 14B model costs no memory here
        model = auto.from_config(config)
    assert architecture(name).parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("zoo", ["tiny", "tiny-llama"])
def test_local_folder_sizes_come_from_its_config_json(zoo):
    from transformers import AutoModelForCausalLM

    from ilr_agents.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model(zoo))
    assert architecture(zoo).parameters == sum(p.numel() for p in model.parameters())
    assert architecture(resolve_model(zoo)) == architecture(zoo)


def test_unknown_hub_model_is_named_with_the_fix():
    with pytest.raises(UnknownModelSizeError, match=r"nobody/unknown-7b.*KNOWN_CONFIGS"):
        architecture("nobody/unknown-7b")


def paper_shape(**changes):
    shape = TrainingShape(
        agents=[architecture("meta-llama/Llama-3.1-8B-Instruct"), architecture("Qwen/Qwen2.5-7B-Instruct")],
        world_size=8,
        sharded=True,
        lora_rank=None,
        master_bytes=4,
        rows=8,
        prompt_tokens=1024,
        completion_tokens=1024,
        gradient_checkpointing=True,
    )
    return dataclasses.replace(shape, **changes)


def test_full_fine_tuning_state_is_16_bytes_per_parameter_split_by_fsdp():
    params = sum(a.parameters for a in paper_shape().agents)
    one = estimate_memory(paper_shape(world_size=1, sharded=False))
    assert one.weights + one.gradients + one.optimizer == 16 * params  # fp32 master + fp32 grad + Adam m, v
    eight = estimate_memory(paper_shape())
    assert eight.weights + eight.gradients + eight.optimizer == pytest.approx(16 * params / 8)
    assert one.training / GIB > 200  # the finding: unsharded, it cannot fit any single GPU
    assert eight.training / GIB < 80  # FSDP over 8 GPUs fits 80 GB cards
    assert eight.gathered_shards > 0 and one.gathered_shards == 0


def test_lora_and_checkpointing_shrink_what_they_should():
    full = estimate_memory(paper_shape())
    lora = estimate_memory(paper_shape(lora_rank=16, master_bytes=2))
    assert lora.optimizer < full.optimizer / 100 and lora.weights < full.weights
    no_ckpt = estimate_memory(paper_shape(gradient_checkpointing=False))
    assert no_ckpt.activations > 5 * full.activations
    assert no_ckpt.logits == full.logits  # logits are not checkpointed


def test_reward_model_and_vllm_phase_are_counted():
    rm = architecture("Skywork/Skywork-Reward-V2-Qwen3-0.6B")
    with_rm = estimate_memory(paper_shape(reward_model=rm))
    without = estimate_memory(paper_shape())
    assert with_rm.training - without.training >= 2 * rm.parameters
    largest = max(paper_shape().agents, key=lambda a: a.parameters)
    assert with_rm.vllm_weights == 2 * largest.parameters
    assert (
        Architecture.from_config(KNOWN_CONFIGS["Skywork/Skywork-Reward-V2-Qwen3-0.6B"]).classifier_labels == 1
    )
