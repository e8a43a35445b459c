"""The math-verify worker pool finds math-verify wherever the caller did, and a pool that cannot start
is an error, never a run of silently wrong answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

import ilr_env
from ilr_env.grading.base import GraderUnavailableError
from ilr_env.grading.verify_pool import VerifyPool
from ilr_env.tasks.base import Question


def test_workers_find_math_verify_on_a_pythonpath_only_install():
    """Packages installed with ``pip --target`` and reached through PYTHONPATH (how a GPU node without the
    project's venv runs it) are invisible to an isolated (-I) worker unless the path is handed over."""
    base = getattr(sys, "_base_executable", sys.executable)
    probe = subprocess.run([base, "-c", "import math_verify"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip(f"{base} imports math_verify by itself; no PYTHONPATH-only install to test")
    site = sysconfig.get_paths()["purelib"]
    root = os.path.dirname(os.path.dirname(ilr_env.__file__))
    code = (
        "from ilr_env.grading.verify_pool import VerifyPool\n"
        "pool = VerifyPool(max_workers=1)\n"
        "print(pool.call('verify', '2000', '\\\\boxed{2000}', timeout=60))\n"
        "pool.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, site])}
    out = subprocess.run(
        [base, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "('ok', (True," in out.stdout, out.stdout + out.stderr[-2000:]


def test_a_pool_whose_workers_cannot_start_raises_and_the_env_does_not_score_it_wrong(monkeypatch):
    false = shutil.which("false")
    assert false is not None
    monkeypatch.setattr(sys, "executable", false)  # a Python that exits at once: no worker can start
    pool = VerifyPool(max_workers=1)
    try:
        with pytest.raises(GraderUnavailableError, match="math-verify worker process did not start"):
            pool.call("verify", "1", "\\boxed{1}", timeout=30)
    finally:
        pool.close()

    def grader(question, text):
        raise GraderUnavailableError("no workers")

    questions = [Question(id="toy/0", prompt="What is 1 + 2?", answer="3", task="toy", kind="math")]
    env = ilr_env.make("toy", questions=questions, grader=grader, mode="cooperate")
    env.reset(seed=0)
    with pytest.raises(GraderUnavailableError):
        env.score("agent_0", "\\boxed{3}")
