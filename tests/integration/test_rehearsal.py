"""The paper path rehearsed whole: `ilr compare --config paper-rehearsal` on CPU, 2 processes, offline.

Slow (minutes, engines and two sharded trainings): `pytest -m slow tests/integration/test_rehearsal.py`.
It prints the wall time and the peak memory of all the run's processes together (sampled); the budget
(<= 20 min on the slower 2-core machine, well inside 24 GB) is reported, not asserted: speed goals
belong in benchmarks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
MATH_FIXTURE = ROOT / "tests" / "env" / "fixtures" / "math"


def rehearsal_data_dir(folder: Path) -> Path:
    """The benchmark files of $ILR_DATA_DIR (links, never copies) plus the MATH-format fixture as the
    training task's math_train / math_test files: MATH train has no offline copy."""
    shared = Path(os.environ["ILR_DATA_DIR"])
    folder.mkdir(parents=True)
    for path in shared.iterdir():
        if not path.name.startswith("math_"):
            (folder / path.name).symlink_to(path)
    for name in ("math_train.jsonl", "math_test.jsonl"):
        (folder / name).symlink_to(MATH_FIXTURE / name)
    return folder


class PeakMemory:
    """Samples the summed resident memory of a process and all its descendants every half second."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def check_placement(run_dir: Path) -> None:
    """Each training run shows 2 processes and every agent split across both ranks."""
    for train_dir in sorted((run_dir / "train").iterdir()):
        placement = json.loads((train_dir / "placement.json").read_text())
        assert placement["num_processes"] == 2, train_dir
        for agent, entry in placement["agents"].items():
            local, full = entry["local_numel"], entry["full_numel"]  # ilr_agents/placement.py's layout
            assert len(local) == 2 and sum(local) == full and max(local) < full, (train_dir, agent, entry)


@pytest.mark.slow
def test_paper_rehearsal_runs_the_whole_paper_path(tmp_path: Path) -> None:
    data = rehearsal_data_dir(tmp_path / "data")
    env = {**os.environ, "ILR_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "experiments.cli", "compare", "--config", "paper-rehearsal",
        "--set", f"output_root={tmp_path / 'runs'}",
    ]  # fmt: skip
    started = time.perf_counter()
    log = (tmp_path / "compare.log").open("w")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    memory = PeakMemory(proc.pid)
    code = proc.wait()
    peak, seconds = memory.stop(), time.perf_counter() - started
    print(f"\npaper-rehearsal: exit {code}, {seconds / 60:.1f} min, peak memory {peak / 2**30:.2f} GiB")
    assert code == 0, (tmp_path / "compare.log").read_text()[-6000:]
    run_dir = tmp_path / "runs" / "paper-rehearsal"
    report = (run_dir / "report.md").read_text()
    assert "## Table 1 layout" in report and "Avg (5 maths)" in report
    results = json.loads((run_dir / "results.json").read_text())
    assert results["sandbox_policy"] == "require_bwrap"
    assert len(results["evaluations"]) == 9  # every benchmark of the paper preset
    check_placement(run_dir)
