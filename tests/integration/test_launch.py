"""One launch path: a config asking for several processes (or an accelerate config) trains under
`accelerate launch`, started by `ilr train` / `ilr compare` themselves; with FSDP2 every agent's model is
sharded across the processes (on CPU too: test_fsdp_cpu.py; the GPU test here adds bf16 compute)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from experiments.pipeline.launch import accelerate_config_path, launch_command, needs_launch, shown
from ilr_agents.config import ConfigError, ILRConfig

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_launch_command_is_what_the_docs_show(tmp_path):
    config = ILRConfig(
        num_processes=8, accelerate_config="fsdp2", mixed_precision="bf16", shared_prompt_forward=False
    )
    assert needs_launch(config) and not needs_launch(ILRConfig())
    assert shown(launch_command(config, "run/launch.yaml")) == (
        "accelerate launch --config_file experiments/accelerate/fsdp2.yaml --num_processes 8 "
        "--mixed_precision bf16 -m experiments.cli train --config run/launch.yaml"
    )
    shipped = yaml.safe_load((ROOT / accelerate_config_path("fsdp2")).read_text())
    assert shipped["distributed_type"] == "FSDP" and shipped["fsdp_config"]["fsdp_version"] == 2
    with pytest.raises(ConfigError, match="accelerate_config='zero9' not found: use one of fsdp2, multi-cpu"):
        accelerate_config_path("zero9")
    with pytest.raises(ConfigError, match="shared_prompt_forward: false"):  # measured: breaks FSDP2 backward
        ILRConfig(num_processes=8, accelerate_config="fsdp2")


@pytest.mark.slow
def test_ilr_train_starts_two_processes_itself(tmp_path, tiny_run):
    from experiments.pipeline.methods import train

    fields = tiny_run(tmp_path / "run", num_processes=2, accelerate_config="multi-cpu", save_steps=2)
    result = train(ILRConfig.from_dict(fields))
    assert result.step == 2
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    assert sorted(p.name for p in (tmp_path / "run").glob("rollouts.rank*.jsonl")) == [
        "rollouts.rank0.jsonl",
        "rollouts.rank1.jsonl",
    ]


@pytest.mark.slow
def test_fsdp2_shards_every_agent_and_computes_in_bf16(tmp_path, tiny_run):
    """On GPUs (one process per GPU, at most 2) or on CPU (2 gloo processes): the same FSDP2 path."""
    from safetensors.numpy import load_file

    from ilr_agents.models import resolve_model

    processes = min(torch.cuda.device_count(), 2) if torch.cuda.is_available() else 2
    fields = tiny_run(
        tmp_path / "run",
        num_processes=processes,
        accelerate_config="fsdp2",
        mixed_precision="bf16",
        shared_prompt_forward=False,
        save_steps=2,
    )
    config = ILRConfig.from_dict(fields)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict()))
    probe = [str(ROOT / "tests" / "integration" / "fsdp_probe.py"), str(config_file), str(tmp_path)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(launch_command(config, config_file, probe), cwd=ROOT, env=env, check=False)
    assert done.returncode == 0
    seen = [row for path in tmp_path.glob("probe.rank*.json") for row in json.loads(path.read_text())]
    assert len(seen) == 2 * processes  # both agents, on every process
    for row in seen:
        assert row["distributed_type"] == "DistributedType.FSDP" and row["mixed_precision"] == "bf16"
        assert row["param_class"] == "DTensor" and row["dtype"] == "torch.float32"  # fp32 master shards
        if processes > 1:
            assert row["local_numel"] < row["full_numel"]
    key = "model.layers.0.mlp.down_proj.weight"
    before = load_file(str(Path(resolve_model("tiny")) / "model.safetensors"))[key]
    after = load_file(str(tmp_path / "run" / "agent_0" / "checkpoint-2" / "model.safetensors"))[key]
    assert after.shape == before.shape and (after != before).mean() > 0.5  # a full state dict, trained
