"""compare's per-question outcomes come from the episode records, with the one definition of length that
``summarise`` uses (completion tokens; none when the policy gave no token ids)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.pipeline.outcomes import question_outcomes
from experiments.reports.records import read_records, sample_from_dict
from ilr_agents.evaluation import summarise
from ilr_agents.rollout import EpisodeRecord, Sample, StageRecord
from ilr_env.grading import Grade
from ilr_env.tasks.base import Question

QUESTION = Question(id="q/0", prompt="What is 2 + 2?", answer="4", task="sum", kind="math")


def _record(text: str, *, correct: bool, box: bool, tokens: int | None, cut: bool = False) -> dict:
    grade = Grade(correct, float(correct), "4" if correct else None, "match" if correct else "no_answer", box)
    sample = Sample(
        text,
        finish_reason="length" if cut else "stop",
        completion_ids=None if tokens is None else list(range(tokens)),
        reward=float(correct),
        grade=grade,
    )
    stage = StageRecord("answer", 0, {"agent_0": []}, {"agent_0": sample})
    question = {"id": QUESTION.id, "prompt": QUESTION.prompt, "answer": QUESTION.answer}
    return EpisodeRecord(0, 0, question, ["agent_0"], {}, [stage], {"agent_0": [sample]}).to_dict()


def test_outcomes_read_the_grade_the_box_the_lenient_rule_and_tokens() -> None:
    records = [
        _record("\\boxed{4}", correct=True, box=True, tokens=7),
        _record("so it is 4", correct=True, box=False, tokens=3),
        _record("2 + 2 makes 4", correct=False, box=False, tokens=None),  # no answer stated: lenient reads 4
        _record("2 + 2 makes 4", correct=False, box=False, tokens=9, cut=True),  # cut: not lenient
    ]
    out = question_outcomes(records, [QUESTION])
    assert out["question_ids"] == ["q/0"] * 4
    assert out["correct"] == [True, True, False, False]
    assert out["boxed"] == [True, False, False, False]
    assert out["strict"] == [True, False, False, False]
    assert out["lenient"] == [True, True, True, False]
    assert out["length"] == [7, 3, None, 9]  # tokens, never words: "2 + 2 makes 4" is not 5 long


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=30), st.none() | st.integers(0, 50)), min_size=1, max_size=8))
def test_length_is_the_one_summarise_uses(tmp_path_factory, answers) -> None:
    records = [_record(text, correct=False, box=False, tokens=n) for text, n in answers]
    path = Path(tmp_path_factory.mktemp("o")) / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    lengths = question_outcomes(read_records(path), [QUESTION])["length"]
    samples = [[sample_from_dict(r["final_samples"]["agent_0"][0])] for r in records]
    known = [n for n in lengths if n is not None]
    expected = summarise(samples)["mean_tokens"]
    assert (expected is None) if not known else expected == np.mean(known)
