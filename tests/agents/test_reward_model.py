"""The reward-model reward: batched scoring equals one-at-a-time scoring, where the model runs, that it
reads a long answer's end, and that its bounded scale never lets a wrong answer out-reward a right one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_agents.rewards import (
    RawReward,
    Reply,
    RewardInputError,
    RewardModelReward,
    build_tiny_reward_model,
    reward_model_device,
    squash_score,
)
from ilr_env import Question
from ilr_env.grading import Grade

pytest.importorskip("torch")


def test_batched_scores_equal_one_at_a_time_scores(tmp_path):
    rm = RewardModelReward(build_tiny_reward_model(str(tmp_path / "rm")), batch_size=3, device="cpu")
    questions = [f"What is {i} + {i}?" for i in range(7)]
    answers = [
        "\\boxed{2}",
        "It is " + "very " * 40 + "long: \\boxed{4}",
        "6",
        "",
        "x" * 300,
        "\\boxed{10}",
        "12",
    ]
    batched = rm.score(questions, answers)
    alone = [rm.score([q], [a])[0] for q, a in zip(questions, answers, strict=True)]
    assert batched == pytest.approx(alone, abs=1e-5)  # padding and the length sort change nothing
    assert len({round(s, 6) for s in batched}) > 1  # graded, not constant
    assert rm.model.dtype.is_floating_point and str(rm.device) == "cpu"


@pytest.mark.parametrize(
    ("gpus", "rank", "world", "device"),
    [
        (0, 0, 1, "cpu"),
        (1, 0, 1, "cuda:0"),  # one GPU: shared with the agents
        (4, 0, 1, "cuda:3"),  # one training process on cuda:0: the reward model gets a GPU of its own
        (8, 5, 8, "cuda:5"),  # every GPU holds a rank: beside this rank's shards
    ],
)
def test_reward_model_device(gpus, rank, world, device):
    assert reward_model_device(gpus, rank, world) == device


def test_long_answers_that_differ_only_at_the_end_score_differently(tmp_path):
    """The answer's end (its \\boxed{}) is what matters; a long reply must not lose it to truncation."""
    rm = RewardModelReward(build_tiny_reward_model(str(tmp_path / "rm")), device="cpu")
    body = "Let x = 3. Then 2x + 5 = 11, so we continue. " * 300
    question = "Solve for x: 2x + 5 = 11."
    lengths = [len(rm.tokenizer(rm._text(question, body + end)).input_ids) for end in ("a", "b")]
    assert min(lengths) > 1024  # longer than the old 1,024-token cut
    right, wrong = rm.score([question, question], [body + "\\boxed{3}", body + "\\boxed{4}"])
    assert right != pytest.approx(wrong, abs=1e-6)


def test_a_text_beyond_max_length_loses_its_start_not_its_end(tmp_path):
    rm = RewardModelReward(build_tiny_reward_model(str(tmp_path / "rm")), device="cpu", max_length=64)
    long_start = "filler words " * 200
    same_end = rm.score(["q", "q"], [long_start + "A" + " tail" * 60, "B" + " tail" * 60])
    assert same_end[0] == pytest.approx(same_end[1], abs=1e-5)  # only the last 64 tokens are read


class _FixedScores:
    """A stand-in reward model whose logits the test chooses (the reward model is not under test)."""

    def __init__(self, scores):
        self.scores = list(scores)

    def score(self, questions, answers):
        return self.scores[: len(answers)]


@settings(max_examples=200, deadline=None)
@given(
    logits=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=8),
    weight=st.floats(0.0, 0.9),
    bonus=st.sampled_from([0.0, 0.05, 0.099]),
    data=st.data(),
)
def test_a_correct_answer_always_out_rewards_a_wrong_one(logits, weight, bonus, data):
    correct = data.draw(st.lists(st.booleans(), min_size=len(logits), max_size=len(logits)))
    texts = data.draw(
        st.lists(st.sampled_from(["\\boxed{1}", "no box"]), min_size=len(logits), max_size=len(logits))
    )
    raw = RawReward(
        "graded", format_bonus=bonus, reward_model=_FixedScores(logits), reward_model_weight=weight
    )
    q = Question(id="q", prompt="1?", answer="1", task="t", kind="math")
    replies = [
        Reply(t, Grade(correct=c, reward=float(c), extracted="1", reason="match", has_box="boxed" in t))
        for t, c in zip(texts, correct, strict=True)
    ]
    rewards = raw([q] * len(logits), replies)
    right = [r for r, c in zip(rewards, correct, strict=True) if c]
    wrong = [r for r, c in zip(rewards, correct, strict=True) if not c]
    if right and wrong:
        assert min(right) > max(wrong)
    assert all(0.0 <= r < 2.0 for r in rewards)


def test_graded_weights_that_could_drown_correctness_are_refused():
    with pytest.raises(RewardInputError, match=r"reward_model_weight=0.95 \+ format_reward=0.1"):
        RawReward("graded", format_bonus=0.1, reward_model=_FixedScores([0.0]), reward_model_weight=0.95)


@given(st.floats(-1e9, 1e9, allow_nan=False), st.floats(-1e9, 1e9, allow_nan=False))
def test_squash_is_bounded_and_keeps_order(a, b):
    sa, sb = squash_score(a), squash_score(b)
    assert 0.0 <= sa <= 1.0 and 0.0 <= sb <= 1.0
    if a < b:
        assert sa <= sb


def test_the_zoo_reward_model_is_usable_by_name():
    from experiments.pipeline.memory import architecture

    rm = RewardModelReward("tiny-rm", device="cpu")
    assert len(rm.score(["1 + 1?"], ["\\boxed{2}"])) == 1
    assert architecture("tiny-rm").classifier_labels == 1
