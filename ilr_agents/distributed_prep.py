"""Work that a multi-process run does once, and models that every process loads whole.

Preparation (self-ranking, the ability fit, difficulties) depends only on the config and the base models,
so repeating it on every process costs N times the time and lets N processes race to write the same files.
``once_on_main`` runs it on the main process and hands the result to the others.

Why a separate gloo group with a long timeout: ranking ~12k questions takes hours, while the default
process group gives up on a collective after ``ddp_timeout`` (30 minutes); gloo also carries the pickled
result on CPU whatever the training backend is (NCCL on GPUs).

``real_weights``: under an accelerate config with ``fsdp_cpu_ram_efficient_loading``, transformers loads
every model as zeros on all processes but local rank 0 and counts on ``accelerator.prepare`` to broadcast
rank 0's weights. Auxiliary models (the reward model, the base models that preparation runs) are never
prepared, so they must be loaded without that shortcut.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")

_RAM_EFFICIENT = "FSDP_CPU_RAM_EFFICIENT_LOADING"
# longer than any preparation: the waiting processes must not give up on the main one while it ranks
PREPARATION_TIMEOUT = timedelta(days=2)


class PreparationError(RuntimeError):
    """Preparation failed on the main process; the other processes stop with its message."""


@contextmanager
def real_weights() -> Iterator[None]:
    """Load models inside this block with their saved weights on every process (not zeros off rank 0)."""
    before = os.environ.get(_RAM_EFFICIENT)
    os.environ[_RAM_EFFICIENT] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_RAM_EFFICIENT, None)
        else:
            os.environ[_RAM_EFFICIENT] = before


def rank_and_size() -> tuple[int, int]:
    """(this process's global rank, number of processes); (0, 1) outside a distributed run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def once_on_main(compute: Callable[[], T]) -> tuple[T, int]:
    """``compute()`` on the main process (global rank 0) only; every process returns its result and the
    rank that computed it. A failure there is raised on every process (as ``PreparationError`` elsewhere),
    so no process waits forever for a result that will not come."""
    rank, size = rank_and_size()
    if size == 1:
        return compute(), rank
    import torch.distributed as dist

    group = _gloo_group()
    box: list[object] = [None]
    failure: BaseException | None = None
    if rank == 0:
        try:
            box = [("ok", compute())]
        except BaseException as exc:  # noqa: BLE001 - told to the others, then raised here
            failure = exc
            box = [("error", f"{type(exc).__name__}: {exc}")]
    dist.broadcast_object_list(box, src=0, group=group)
    if failure is not None:
        raise failure
    status, value = box[0]  # type: ignore[misc]
    if status == "error":
        raise PreparationError(f"preparation failed on the main process (rank 0): {value}")
    return value, 0


def gather_to_main(item: T) -> list[T] | None:
    """Every process's ``item``, in rank order, on the main process (None elsewhere); ``[item]`` alone.

    Call from one thread per process at the same point of the run on every process (a collective)."""
    rank, size = rank_and_size()
    if size == 1:
        return [item]
    import torch.distributed as dist

    out: list[T] | None = [None] * size if rank == 0 else None  # type: ignore[list-item]
    dist.gather_object(item, out, dst=0, group=_gloo_group())
    return out


_GROUP: list[object] = []  # this process's gloo group, made on first use


def _gloo_group() -> object:
    """One gloo group with a long timeout for this module's collectives (made collectively, on first use:
    every process reaches its first collective here at the same point of the run)."""
    if not _GROUP:
        import torch.distributed as dist

        _GROUP.append(dist.new_group(backend="gloo", timeout=PREPARATION_TIMEOUT))
    return _GROUP[0]


def release() -> None:
    """Close this module's gloo group once every process is done with it (end of a run): a group left
    open until interpreter exit can abort the process whose peer tore its connections down first."""
    if _GROUP:
        import torch.distributed as dist

        group = _GROUP.pop()
        dist.barrier(group=group)
        dist.destroy_process_group(group)
