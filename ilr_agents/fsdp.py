"""What FSDP through accelerate needs so that one process can shard several models of different families."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def fsdp_on_cpu() -> Iterator[None]:
    """Build a trainer so that an FSDP accelerate config shards its model on CPU processes too.

    accelerate enables FSDP only when the processes sit on accelerators: on CPU (gloo) it drops the FSDP
    plugin and wraps each model in DDP, a full replica per process. torch's FSDP2 itself runs on a CPU device
    mesh over gloo, so the same ``fully_shard`` path as on GPUs can run here. accelerate takes that path when
    its process state reads as a multi-device one while its ``AcceleratorState`` is first built (inside the
    first trainer's ``Accelerator``); this block presents it that way for that moment (the built state then records FSDP, as on GPUs).
    A no-op on GPUs, without an FSDP config, and once the state exists.
    """
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    process = PartialState._shared_state
    wanted = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if (
        not wanted
        or process.get("distributed_type") != DistributedType.MULTI_CPU
        or AcceleratorState._shared_state
    ):
        yield
        return
    process["distributed_type"] = DistributedType.MULTI_GPU
    try:
        yield
    finally:
        # once built, the state wrote its own type (FSDP) back to the process state, as it does on GPUs
        if process.get("distributed_type") == DistributedType.MULTI_GPU:
            process["distributed_type"] = DistributedType.MULTI_CPU
