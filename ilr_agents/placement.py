"""``placement.json``: where each agent's weights live in a run, read from the trainers' prepared models.

Why a file: a config that asks for FSDP can silently train full replicas (accelerate fell back to data
parallelism on CPU before ``fsdp.fsdp_on_cpu``), and the only way to tell is to count what each process
holds. Each process records, per agent, its parameters as the prepared model holds them (local shard sizes,
devices, dtypes); the main process writes them all, with which process ran the preparation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ilr_agents.checkpoint import atomic_write_json
from ilr_agents.distributed_prep import gather_to_main, rank_and_size


def holding(model: Any) -> dict[str, Any]:
    """How this process holds ``model``: full and local parameter counts, devices, dtypes, tensor class."""
    params = list(model.parameters())
    local = [p.to_local() if hasattr(p, "to_local") else p for p in params]
    return {
        "full_numel": int(sum(p.numel() for p in params)),  # a DTensor counts its global shape
        "local_numel": int(sum(t.numel() for t in local)),
        "devices": sorted({str(t.device) for t in local}),
        "dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in params}),
        "param_class": sorted({type(p).__name__ for p in params}),
    }


class PlacementCallback(TrainerCallback):
    """Records ``holding`` of its agent's model once the trainer has prepared (sharded) it."""

    def __init__(self, agent: str, seen: dict[str, dict[str, Any]]) -> None:
        self.agent, self.seen = agent, seen

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is not None:
            self.seen[self.agent] = {"distributed_type": _distributed_type(), **holding(model)}


def _distributed_type() -> str:
    from accelerate.state import PartialState

    return str(PartialState().distributed_type).rsplit(".", 1)[-1]


def write_placement(run_dir: Path, seen: dict[str, dict[str, Any]], prepared_on: int | None) -> None:
    """Gather every process's records and write ``placement.json`` on the main process.

    Per agent: ``full_numel``, ``local_numel`` (one per rank), ``devices`` and ``dtypes`` (one list per rank)
    and ``sharded`` (every rank holds less than the full count); ``prepared_on``: the rank that ran the
    preparation (None: the method prepares nothing). A collective: call it on every process."""
    rank, size = rank_and_size()
    everyone = gather_to_main(seen)
    if rank != 0 or everyone is None:
        return
    agents: dict[str, Any] = {}
    for name in sorted({a for part in everyone for a in part}):
        per_rank = [part.get(name, {}) for part in everyone]
        full = max(int(r.get("full_numel", 0)) for r in per_rank)
        local = [int(r.get("local_numel", 0)) for r in per_rank]
        agents[name] = {
            "full_numel": full,
            "local_numel": local,
            "sharded": size > 1 and all(0 < n < full for n in local),
            "devices": [r.get("devices", []) for r in per_rank],
            "dtypes": [r.get("dtypes", []) for r in per_rank],
            "param_class": [r.get("param_class", []) for r in per_rank],
            "distributed_type": [r.get("distributed_type") for r in per_rank],
        }
    atomic_write_json(
        Path(run_dir) / "placement.json",
        {
            "num_processes": size,
            "preparation": {"ran_on_rank": prepared_on, "processes": int(prepared_on is not None)},
            "agents": agents,
        },
    )
