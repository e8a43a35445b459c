"""Reward functions in TRL's shape: correctness, the strict format term, a reward model, combinations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_agents.rewards import (
    FormatReward,
    RewardInputError,
    build_reward,
    correctness_reward,
    last_box_content,
    question_column,
    weighted_sum,
)
from ilr_env import Question

Q = Question(id="q1", prompt="What is 2 + 3?", answer="5", task="toy")


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_correctness_reads_question_column_or_answer_column() -> None:
    comps = [chat("so \\boxed{5}"), chat("\\boxed{6}"), "The answer is 5"]
    by_json = correctness_reward(prompts=["p"] * 3, completions=comps, question_json=[question_column(Q)] * 3)
    by_answer = correctness_reward(prompts=["What is 2 + 3?"] * 3, completions=comps, answer=["5"] * 3)
    assert by_json == by_answer
    assert by_json[0] == 1.0 and by_json[1] == 0.0
    with pytest.raises(RewardInputError, match="question_json"):
        correctness_reward(prompts=["p"], completions=["x"])


def test_format_bonus_only_for_non_empty_box_in_untruncated_reply() -> None:
    fmt = FormatReward(0.1, eos_token_ids=[9])
    comps = ["\\boxed{12}", "\\boxed{}", "\\boxed{ }", "no box", "\\boxed{12}"]
    out = fmt(prompts=[""] * 5, completions=comps, completion_ids=[[1, 9], [1, 9], [1, 9], [1, 9], [1, 2]])
    assert out == [0.1, 0.0, 0.0, 0.0, 0.0]  # last one was cut at the token limit (no EOS)
    assert fmt(prompts=[""], completions=["\\boxed{3}"], truncated=[True]) == [0.0]
    with pytest.raises(ValueError, match="bonus"):
        FormatReward(-1.0)


@given(st.text(max_size=40))
@settings(max_examples=100, deadline=None)
def test_box_parser_never_crashes_and_round_trips(inner: str) -> None:
    last_box_content(inner)
    if not any(ch in inner for ch in "{}\\"):  # the grader's parser strips the box's outer whitespace
        assert (last_box_content(f"x \\boxed{{{inner}}} y") or "") == inner.strip()


def test_nested_box() -> None:
    assert last_box_content("a \\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_box_content("\\boxed{unclosed") is None


def test_weighted_sum_and_none_propagation() -> None:
    def a(prompts, completions, **kw):
        return [1.0, None]

    def b(prompts, completions, **kw):
        return [0.5, 0.5]

    fn = weighted_sum([(a, 1.0), (b, 2.0)], name="mix")
    assert fn.__name__ == "mix"
    assert fn(prompts=["", ""], completions=["", ""]) == [2.0, None]


def test_reward_model_scores_are_graded_batched_and_deterministic(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from ilr_agents.rewards import RewardModelReward, build_tiny_reward_model

    path = build_tiny_reward_model(str(tmp_path / "rm"))
    rm = RewardModelReward(path, batch_size=2)
    answers = ["\\boxed{5}", "I think 6", "five", "\\boxed{5}"]
    first = rm(prompts=[[{"role": "user", "content": Q.prompt}]] * 4, completions=[chat(a) for a in answers])
    again = RewardModelReward(path, batch_size=4)(prompts=[Q.prompt] * 4, completions=answers)
    assert len(set(first[:3])) == 3  # graded: different answers, different scores
    assert first[0] == pytest.approx(first[3], abs=1e-6)
    assert first == pytest.approx(again, abs=1e-5)  # batch size and prompt form do not matter
    graded = build_reward("graded", reward_model=path, reward_model_weight=0.5)
    scores = graded(
        prompts=[""] * 2,
        completions=["\\boxed{5}", "\\boxed{6}"],
        question_json=[json.dumps(Q.to_dict())] * 2,
    )
    assert scores[0] - scores[1] > 0.5  # correctness dominates, the reward model grades within


def test_lenient_correctness_reads_the_last_number_only_of_untruncated_answerless_replies() -> None:
    from ilr_agents.rewards import LenientCorrectness, lenient_correctness

    q = Question(id="t/1", prompt="Calculate 4 * 7.", answer="28", task="t")
    assert lenient_correctness(q, "4 * 7 = 28.", truncated=False) == 1.0
    assert lenient_correctness(q, "4 * 7 = 28.", truncated=True) == 0.0  # cut replies end on any number
    assert (
        lenient_correctness(q, "4 * 7 = 28, the answer is 27", truncated=False) == 0.0
    )  # a stated answer wins
    assert lenient_correctness(q, "So \\boxed{28}", truncated=True) == 1.0  # explicit answers stay graded
    assert lenient_correctness(q, "no digits here", truncated=False) == 0.0
    fn = LenientCorrectness(eos_token_ids=[0])
    out = fn(
        ["p", "p"],
        ["4 * 7 = 28.", "4 * 7 = 28."],
        question_json=[question_column(q)] * 2,
        completion_ids=[[5, 6, 0], [5, 6, 7]],
    )
    assert out == [1.0, 0.0]


def test_prompt_overrides_reach_the_training_prompts() -> None:
    from ilr_agents.training_data import plain_prompts

    q = Question(id="t/1", prompt="Calculate 4 * 7.", answer="28", task="t")
    default = plain_prompts([q])[0]
    custom = plain_prompts([q], {"answer_format": {"math": "Answer in \\boxed{} only."}})[0]
    assert "Answer in \\boxed{} only." in custom[-1]["content"]
    assert "Answer in \\boxed{} only." not in default[-1]["content"]
