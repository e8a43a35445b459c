"""Test-wide defaults: read benchmark files from the shared data directory and never touch the network."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

os.environ.setdefault("ILR_DATA_DIR", str(_SHARED_DATA))
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Without a working bubblewrap, say so in one line at the end (the bwrap-only adversarial tests were
    skipped), not only among the skip reasons."""
    from ilr_env.grading.sandbox import isolation_mode

    mode, why = isolation_mode()
    if mode == "rlimits":
        terminalreporter.write_line(
            f"code sandbox: {why}; the bwrap-only adversarial tests were skipped "
            "(`make install` as root installs bubblewrap)",
            yellow=True,
        )
