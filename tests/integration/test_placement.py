"""Every training run says where its weights lived: ``placement.json`` (the 2-process sharded case is in
test_fsdp_cpu.py; here one process, for the baseline, which prepares nothing)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

from experiments.pipeline.methods import train
from ilr_agents.config import ILRConfig


def test_a_single_process_baseline_run_records_whole_models(tmp_path, tiny_run):
    fields = tiny_run(tmp_path / "run", method="grpo", max_steps=1)
    train(ILRConfig.from_dict(fields))
    placement = json.loads((tmp_path / "run" / "placement.json").read_text())
    assert placement["num_processes"] == 1
    assert placement["preparation"] == {"ran_on_rank": None, "processes": 0}
    assert sorted(placement["agents"]) == ["agent_0", "agent_1"]
    for row in placement["agents"].values():
        assert row["local_numel"] == [row["full_numel"]] and row["full_numel"] > 0 and not row["sharded"]
        assert row["devices"] == [["cpu"]] and row["dtypes"] == [["float32"]]
