"""What FSDP through accelerate needs so that one process can shard several models of different families."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback
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
    first trainer's ``Accelerator``); this block presents it that way for that moment (the built state
    then records FSDP, as on GPUs).
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


class FinalWeightsOnly(TrainerCallback):
    """Under FSDP with sharded checkpoints: the last save of a run writes the full weights alone.

    Intermediate checkpoints stay sharded (torch distributed checkpoint: each process writes its own shard of
    the weights and of the AdamW state; nothing is gathered), which is all a resume needs. The last one is
    what evaluation and users load, so it is a plain HF model folder: weights gathered once, no optimizer
    state (for an 8B model that is 16-32 GB instead of ~96 GB). The accelerate plugin is shared by the
    agents' trainers, which save one at a time (joint_rollout's token), so switching it for one save is safe.
    """

    def __init__(self, trainer: GRPOTrainer) -> None:
        self.trainer = trainer
        self.saved: tuple[Any, bool] | None = None

    def _plugin(self) -> Any:
        return getattr(self.trainer.accelerator.state, "fsdp_plugin", None)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        plugin = self._plugin()
        last = state.max_steps > 0 and state.global_step >= state.max_steps
        if (
            plugin is None
            or not (control.should_save and last)
            or "SHARDED" not in str(plugin.state_dict_type)
        ):
            return
        self.saved = (plugin.state_dict_type, args.save_only_model)
        plugin.set_state_dict_type("FULL_STATE_DICT")
        args.save_only_model = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.saved is not None:
            self._plugin().set_state_dict_type(self.saved[0])
            args.save_only_model = self.saved[1]
            self.saved = None
