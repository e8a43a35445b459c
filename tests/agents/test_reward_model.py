"""The reward-model reward: batched scoring equals one-at-a-time scoring, and where the model runs."""

from __future__ import annotations

import pytest

from ilr_agents.rewards import RewardModelReward, build_tiny_reward_model, reward_model_device

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
