"""`ilr eval` end to end on the tiny models, and the metric helpers it relies on."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.commands.evaluate import markdown_table
from ilr_agents.config import ConfigError
from ilr_agents.evaluation import summarise
from ilr_agents.rollout import Sample
from ilr_env import Grade


def sample(correct: bool, boxed: bool = True, text: str = "x", tokens: int | None = 3) -> Sample:
    grade = Grade(correct=correct, reward=float(correct), extracted="1", reason="test", has_box=boxed)
    return Sample(text, completion_ids=None if tokens is None else list(range(tokens)), grade=grade)


def test_summarise_accuracy_pass_at_k_and_ci() -> None:
    samples = [
        [sample(True), sample(False)],
        [sample(False, boxed=False), sample(False)],
        [sample(False), sample(True)],
    ]
    m = summarise(samples, ks=[1, 2])
    assert m["accuracy"] == pytest.approx(1 / 3) and m["boxed_rate"] == pytest.approx(2 / 3)
    assert m["pass@1"] == pytest.approx(1 / 3) and m["pass@2"] == pytest.approx(2 / 3)
    assert m["ci95"][0] <= m["accuracy"] <= m["ci95"][1] and m["mean_tokens"] == 3
    with pytest.raises(ValueError, match="pass@3"):
        summarise(samples, ks=[3])


def test_summary_interval_is_seeded_and_empty_input_is_nan() -> None:
    samples = [[sample(c, tokens=1)] for c in (True, False, True, True, False, False, True)]
    assert summarise(samples, seed=1)["ci95"] == summarise(samples, seed=1)["ci95"]
    low, high = summarise(samples, seed=1)["ci95"]
    assert 0.0 <= low <= 4 / 7 <= high <= 1.0
    assert all(math.isnan(x) for x in summarise([], seed=1)["ci95"])


def test_markdown_table_lists_every_row() -> None:
    table = markdown_table(
        "gsm8k",
        "single",
        {
            "tiny": {
                "accuracy": 0.25,
                "ci95": [0.0, 0.5],
                "boxed_rate": 1.0,
                "mean_tokens": 12.0,
                "pass@2": 0.5,
            }
        },
    )
    assert "| tiny | 25.0 | 0.0–50.0 | 100.0 | 12 | 50.0 |" in table


def run_cli(*args: str) -> int:
    return main(["eval", "--no-progress", "--max-new-tokens", "12", *args])


def test_idea3_transcripts_hold_what_the_env_promises(tmp_path: Path, capsys) -> None:
    out = tmp_path / "idea3"
    assert (
        run_cli(
            "--protocol",
            "idea3",
            "--models",
            "tiny",
            "tiny",
            "--task",
            "math500",
            "--limit",
            "4",
            "--out",
            str(out),
        )
        == 0
    )
    assert "majority" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert {"agent_0 (tiny)", "agent_1 (tiny)", "majority"} <= set(results["metrics"])
    assert len(results["per_question"]) == 4 and (out / "results.md").read_text().startswith("### math500")
    records = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    assert len(records) == 4
    from test_viewer import page_rows  # the page, read the way its script reads it

    assert [row["id"] for row in page_rows(out / "viewer.html")] == [r["question"]["id"] for r in records]
    for rec in records:
        assert [s["stage"] for s in rec["stages"]] == ["share", "analyse", "fuse"]
        question = rec["question"]["prompt"]
        for k, stage in enumerate(rec["stages"]):
            for agent, other in (("agent_0", "agent_1"), ("agent_1", "agent_0")):
                prompt = "\n".join(m["content"] for m in stage["agents"][agent]["messages"])
                assert question in prompt  # every stage shows the question
                if k > 0:  # and the peer's message from the previous stage
                    peer = rec["stages"][k - 1]["agents"][other]["message"].strip()
                    assert peer[:40] in prompt
        assert set(rec["modes"].values()) <= {"cooperate", "compete"}
        assert set(rec["final_samples"]) == {"agent_0", "agent_1"}


def test_single_agent_eval_with_samples_and_pass_at_k(tmp_path: Path) -> None:
    out = tmp_path / "single"
    assert (
        run_cli(
            "--task",
            "gsm8k",
            "--model",
            "tiny",
            "--limit",
            "3",
            "--n",
            "2",
            "--temperature",
            "1.0",
            "--pass-k",
            "1",
            "2",
            "--out",
            str(out),
        )
        == 0
    )
    metrics = json.loads((out / "results.json").read_text())["metrics"]["tiny"]
    assert metrics["n_questions"] == 3 and {"pass@1", "pass@2", "accuracy", "ci95", "boxed_rate"} <= set(
        metrics
    )
    records = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    assert [len(r["stages"]) for r in records] == [1, 1, 1]
    assert all(len(r["final_samples"]["agent_0"]) == 2 for r in records)


@pytest.mark.slow
def test_smollm2_gsm8k_20_offline_on_cpu(tmp_path: Path, capsys) -> None:
    started = time.perf_counter()
    assert (
        main(
            [
                "eval",
                "--task",
                "gsm8k",
                "--model",
                "smollm2-135m",
                "--limit",
                "20",
                "--no-progress",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "accuracy" in printed
    metrics = json.loads((tmp_path / "results.json").read_text())["metrics"]
    (entry,) = metrics.values()
    assert entry["n_questions"] == 20 and 0.0 <= entry["accuracy"] <= 1.0
    print(f"smollm2-135m gsm8k@20: accuracy {entry['accuracy']:.2f} in {time.perf_counter() - started:.0f} s")


def test_code_pass_at_k_with_scripted_solutions() -> None:
    import itertools

    import ilr_env
    from ilr_agents.evaluation import evaluate_alone
    from ilr_agents.policies import SamplingParams, ScriptedPolicy

    questions = ilr_env.load_questions("humaneval", limit=2)
    turn = itertools.count()

    def solve(chat: list[dict[str, str]]) -> str:
        (q,) = [q for q in questions if q.metadata["entry_point"] in chat[-1]["content"]]
        body = q.answer if next(turn) % 2 == 0 else "    return None\n"  # alternate right / wrong
        return f"```python\n{q.metadata['prompt']}{body}```"

    result = evaluate_alone(ScriptedPolicy(solve, name="oracle"), questions, SamplingParams(), n=2, ks=[1, 2])
    metrics = result.metrics["oracle"]
    assert metrics["accuracy"] == 1.0  # the first sample of each question is the right one
    assert metrics["pass@1"] == 0.5 and metrics["pass@2"] == 1.0
    assert [row["n_correct"] for row in result.per_question] == [1, 1]


def test_idea3_alternating_turns_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "alt"
    args = ["--protocol", "idea3", "--turn-order", "alternating", "--models", "tiny", "tiny-llama"]
    assert run_cli(*args, "--task", "math500", "--limit", "2", "--out", str(out)) == 0
    for line in (out / "transcripts.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert [(s["stage"], list(s["agents"])) for s in rec["stages"]] == [
            (stage, [agent]) for stage in ("share", "analyse", "fuse") for agent in ("agent_0", "agent_1")
        ]
        assert set(rec["final_samples"]) == {"agent_0", "agent_1"}


def test_abilities_file_for_eval_is_matched_by_model_name(tmp_path: Path) -> None:
    from experiments.commands.evaluate import _abilities

    path = tmp_path / "a.json"
    path.write_text(json.dumps({"tiny-llama": 1.0, "tiny": -1.0}))
    assert _abilities(str(path), ["tiny", "tiny-llama"]) == [-1.0, 1.0]  # agent order
    assert _abilities("0.5,0.25", ["tiny", "tiny"]) == [0.5, 0.25]
    path.write_text(json.dumps({"tiny": 0.0, "other": 1.0}))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['other'\]"):
        _abilities(str(path), ["tiny", "tiny-llama"])


def test_eval_rejects_several_greedy_samples_before_loading_anything(tmp_path: Path, capsys) -> None:
    """No model, data or server is touched: the unreachable URL would otherwise fail much later."""
    for backend in ("transformers", "vllm", "openai"):
        rc = run_cli(
            "--task", "no-such-task", "--model", "no-such-model", "--n", "2", "--backend", backend,
            "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path),
        )  # fmt: skip
        assert rc == 2
        assert re.search("ilr eval: error: .*n=2 with temperature=0.*--temperature", capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


def test_difficulty_file_from_ilr_difficulty_is_read_per_agent(tmp_path: Path) -> None:
    from experiments.commands.evaluate import _difficulty
    from ilr_env import difficulty as dif

    per_model = {"tiny": {"values": {"q1": 1.0}}, "tiny-llama": {"values": {"q1": -1.0}}}
    est = dif.Estimates("difficulty", {"q1": 0.0}, {"method": "self_rank_agents", "per_model": per_model})
    path = dif.save_json(est, tmp_path / "d.json")
    assert _difficulty(str(path), ["tiny-llama", "tiny"]) == {"agent_0": {"q1": -1.0}, "agent_1": {"q1": 1.0}}
    plain = dif.save_json(dif.Estimates("difficulty", {"q1": 0.5}), tmp_path / "plain.json")
    assert _difficulty(str(plain), ["tiny", "tiny"]) == {"q1": 0.5}
    assert _difficulty("level", ["tiny"]) == "level"
