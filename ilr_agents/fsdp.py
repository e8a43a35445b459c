"""What FSDP through accelerate needs so that one process can shard several models of different families."""

from __future__ import annotations

import functools

from trl import GRPOTrainer


def wrap_this_model_next(trainer: GRPOTrainer) -> None:
    """Let FSDP pick the layers to shard from the model ``trainer`` is about to wrap.

    accelerate keeps one FSDP plugin per process and, on the first model it wraps, stores that model's
    layer classes in it (e.g. Qwen2DecoderLayer); ILR wraps one model per agent, of different families,
    so the next agent's wrap (a Llama) would look for Qwen2 layers and fail. Call before each ``train()``.
    """
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if plugin is None:
        return
    plugin.transformer_cls_names_to_wrap = None
    if isinstance(plugin.auto_wrap_policy, functools.partial):
        plugin.auto_wrap_policy = plugin.auto_wrap_policy.func
