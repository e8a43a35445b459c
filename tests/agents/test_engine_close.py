"""A colocated engine's shutdown must leave the training processes' default group standing.

vLLM's engine shutdown (``cleanup_dist_env_and_memory``) destroys torch's default process group. The GRPO
baseline trains its agents one after the other, each with its own engine, so the first engine's shutdown
took down the trainers' group and reset torch's group counter: the second engine then reused the first
one's group names and failed in 2 processes (gloo "connection refused", or a hang). ``close_engine`` shuts
an engine down with the default group kept. The engine here is a stand-in whose shutdown runs vLLM's real
cleanup, in a real (1-process, gloo) default group.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch.distributed as dist

from ilr_agents.vllm_training import close_engine

parallel_state = pytest.importorskip("vllm.distributed.parallel_state")


class EngineCore:
    """vLLM's in-process engine client as far as shutdown goes: its teardown is vLLM's own."""

    def __init__(self) -> None:
        self.shut = 0

    def shutdown(self) -> None:
        self.shut += 1
        parallel_state.cleanup_dist_env_and_memory()


def trainer_with(engine: EngineCore) -> SimpleNamespace:
    llm = SimpleNamespace(llm_engine=SimpleNamespace(engine_core=engine))
    return SimpleNamespace(vllm_generation=SimpleNamespace(mode="colocate", llm=llm))


@pytest.fixture
def default_group(tmp_path: Path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield dist.GroupMember.WORLD
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_closing_an_engine_keeps_the_default_group_and_its_group_names(default_group) -> None:
    first = dist.new_group(backend="gloo")  # an engine's own subgroup
    engine = EngineCore()
    close_engine(trainer_with(engine))
    assert engine.shut == 1
    assert dist.is_initialized() and dist.GroupMember.WORLD is default_group
    second = dist.new_group(backend="gloo")  # the next engine's subgroup
    assert second.group_name != first.group_name  # the counter was not reset: no stale names in the store
    dist.barrier(group=second)


def test_after_close_a_real_destroy_of_the_default_group_still_works(default_group) -> None:
    close_engine(trainer_with(EngineCore()))
    dist.destroy_process_group()  # the guard is gone once the engine is closed
    assert not dist.is_initialized()


def test_no_engine_no_op() -> None:
    close_engine(SimpleNamespace())  # HF generation: no vllm_generation
    close_engine(SimpleNamespace(vllm_generation=SimpleNamespace(mode="server")))  # server mode: no llm
