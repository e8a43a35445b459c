"""``once_on_main`` and ``gather_to_main`` over two real gloo processes (no models: a few seconds).

Why: preparation runs on rank 0 only and the others wait for its result; if rank 0 fails, the others must
stop with its message instead of waiting forever, and no process other than rank 0 may compute."""

from __future__ import annotations

import os
import socket

import torch.distributed as dist
import torch.multiprocessing as mp

from ilr_agents.distributed_prep import PreparationError, gather_to_main, once_on_main, rank_and_size, release


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, fail: bool, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    calls = []

    def compute() -> dict:
        calls.append(rank)
        if fail:
            raise ValueError("no ranking parsed")
        return {"abilities": [0.5, -1.0]}

    try:
        value, ran_on = once_on_main(compute)
        gathered = gather_to_main({"rank": rank_and_size()[0]})
        release()
        out[rank] = ("ok", value, ran_on, calls, gathered)
    except Exception as exc:  # noqa: BLE001 - the test reads what each rank raised
        out[rank] = ("error", type(exc).__name__, str(exc), calls, None)
    finally:
        dist.destroy_process_group()


def _run(fail: bool) -> dict:
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(_free_port(), fail, out), nprocs=2, join=True)
        return dict(out)


def test_main_process_computes_once_and_every_process_gets_the_result():
    out = _run(fail=False)
    assert out[0][:4] == ("ok", {"abilities": [0.5, -1.0]}, 0, [0])
    assert out[1][:4] == ("ok", {"abilities": [0.5, -1.0]}, 0, [])  # rank 1 never computed
    assert out[0][4] == [{"rank": 0}, {"rank": 1}] and out[1][4] is None


def test_a_failure_on_the_main_process_stops_the_others_with_its_message():
    out = _run(fail=True)
    assert out[0][:3] == ("error", "ValueError", "no ranking parsed")
    assert out[1][1] == PreparationError.__name__ and "ValueError: no ranking parsed" in out[1][2]
    assert out[1][3] == []


def test_a_single_process_computes_itself():
    assert once_on_main(lambda: 3) == (3, 0) and gather_to_main("x") == ["x"]
    release()  # nothing to release
