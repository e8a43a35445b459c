"""Test-wide defaults: read benchmark files from the shared data directory and never touch the network."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

os.environ.setdefault("ILR_DATA_DIR", str(_SHARED_DATA))
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Without a working bubblewrap, say so in one line at the end (the bwrap-only adversarial tests were
    skipped), not only among the skip reasons."""
    from ilr_env.grading.sandbox import isolation_mode

    mode, why = isolation_mode()
    if not mode.startswith("bwrap"):
        terminalreporter.write_line(
            f"code sandbox: {why}; the bwrap-only adversarial tests were skipped "
            "(`make install` as root installs bubblewrap)",
            yellow=True,
        )


@pytest.fixture(scope="session")
def reward_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random reward model. Random policies never answer correctly, so correctness would give
    all-zero groups and no gradient; its scores are graded and deterministic (and calibration matters)."""
    from ilr_agents.rewards import build_tiny_reward_model

    return build_tiny_reward_model(str(tmp_path_factory.mktemp("rm")))


@pytest.fixture(scope="session")
def tiny_run(reward_model: str) -> Callable[..., dict[str, Any]]:
    """``tiny_run(output_dir, **overrides)``: the fields of a two-agent ILR run on tiny random models that
    trains in seconds on a CPU (rewarded by ``reward_model``)."""

    def fields(out: Path, **overrides: Any) -> dict[str, Any]:
        return {
            "models": ["tiny", "tiny-llama"],
            "task": "gsm8k",
            "train_limit": 8,
            "validation_limit": 4,
            "num_generations": 2,
            "per_device_train_batch_size": 4,
            "max_steps": 2,
            "max_completion_length": 8,
            "max_stage_tokens": 6,
            "grpo": {"mask_truncated_completions": False, "learning_rate": 1e-3},
            "report_to": ["none"],
            "progress": False,
            "output_dir": str(out),
            "reward": "reward_model",
            "reward_model": reward_model,
            **overrides,
        }

    return fields
