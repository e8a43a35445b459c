"""`ilr compare` sets the sandbox policy once, before anything is graded: the base models' and the trained
models' MBPP answers are graded under the same policy (the training phase used to switch it mid-run)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments.pipeline import compare, methods
from ilr_agents.policies import ScriptedPolicy
from ilr_env.grading.sandbox import POLICY_ENV, bwrap_available, sandbox_policy
from ilr_env.tasks import load_questions

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="grading under require_bwrap needs bwrap")


def test_base_and_trained_phases_grade_mbpp_under_one_policy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(POLICY_ENV, "auto")  # what a shell starts with
    gold = load_questions("mbpp", "test", limit=1)[0].answer
    config = compare.CompareConfig(
        name="policy-once",
        output_root=str(tmp_path),
        train={
            "models": ["tiny", "tiny"],
            "task": "rg/basic_arithmetic",
            "sandbox": "require_bwrap",
            "report_to": ["none"],
        },
        methods={"grpo": {"method": "grpo", "models": ["tiny"]}},
        evaluate=[{"task": "mbpp", "split": "test", "limit": 1}],
        eval_max_new_tokens=8,
    )
    graded: list[tuple[str, str, bool]] = []
    real_evaluate = compare.evaluate_policy

    def evaluate(policy, cfg, questions, label, seed=None):  # the real evaluation, with the policy noted
        out = real_evaluate(policy, cfg, questions, label, seed)
        graded.append((policy.name, sandbox_policy(), out["mbpp:test[:1]"]["correct"][0]))
        return out

    def trained(cfg):  # the training itself is not under test: a finished run with one agent
        return SimpleNamespace(output_dir=Path(cfg.output_dir), step=1, agents=["agent_0"], metrics_path="m")

    monkeypatch.setattr(compare, "evaluate_policy", evaluate)
    monkeypatch.setattr(
        compare,
        "load_policy",
        lambda model, ckpt, lora, name, backend: ScriptedPolicy([f"```python\n{gold}\n```"], name=name),
    )
    monkeypatch.setattr(compare, "final_checkpoints", lambda run_dir, agents: {"agent_0": None})
    monkeypatch.setitem(methods.METHODS, "grpo", trained)  # methods.train itself still runs
    monkeypatch.setattr(compare, "write_page", lambda run_dir: None)
    monkeypatch.setattr("experiments.reports.report.write_report", lambda run_dir, results, pairs: run_dir)
    compare.run_comparison(config)
    assert [name for name, _, _ in graded] == ["tiny", "grpo agent_0"]
    assert {policy for _, policy, _ in graded} == {"require_bwrap"}  # one policy, set before the base phase
    assert [ok for _, _, ok in graded] == [True, True]  # the same answer, the same verdict
