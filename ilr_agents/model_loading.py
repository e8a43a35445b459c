"""A trainable causal LM, its tokenizer and its LoRA adapter settings, as the config names them."""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from ilr_agents.config import ILRConfig
from ilr_agents.models import resolve_model


def load_model(name: str, config: ILRConfig) -> tuple[Any, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a zoo name, folder or hub id."""
    path = resolve_model(name)
    dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def peft_config(config: ILRConfig) -> LoraConfig | None:
    if not config.lora:
        return None
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
        lora_dropout=0.0,
    )
