"""Self-ranking's numbers: a question's percentile is its mid-rank within the batch it was ranked in, so a
short final batch is scaled by its own length, not by the nominal batch size."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_env import difficulty as dif
from ilr_env.tasks import Question


def _questions(n: int) -> list[Question]:
    return [Question(id=f"q{i}", prompt=f"problem number {i}", answer="0", task="toy") for i in range(n)]


def _oracle(order_key):
    """Ranks each batch by ``order_key(question id)``, in the reply format the prompt asks for."""

    def rank(chats):
        replies = []
        for chat in chats:
            labels = re.findall(r"^Q(\d+): problem number (\d+)", chat[1]["content"], re.MULTILINE)
            ordered = sorted(labels, key=lambda lab: order_key(f"q{lab[1]}"))
            replies.append("Ranking: " + ", ".join(f"Q{n}" for n, _ in ordered))
        return replies

    return rank


def _batch_lengths(n: int, k: int) -> list[int]:
    lengths = [min(k, n - i) for i in range(0, n, k)]
    return [b for b in lengths if b >= 2]


def test_short_final_batch_percentiles_use_its_own_length():
    # 5 questions in batches of 3: one batch of 3 and a final batch of 2
    est = dif.rank_difficulty(_questions(5), _oracle(lambda q: int(q[1:])), batch_size=3, passes=1, seed=0)
    ranks = sorted(est.metadata["mean_normalised_rank"].values())
    assert ranks == pytest.approx(sorted([1 / 6, 3 / 6, 5 / 6, 1 / 4, 3 / 4]))
    for qid, r in est.metadata["mean_normalised_rank"].items():
        assert est.values[qid] == pytest.approx(math.log(r / (1 - r)) / 1.7)


@given(st.integers(2, 30), st.integers(2, 9), st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_every_ranked_batch_averages_the_middle_percentile(n, k, seed):
    """Mid-ranks (p + 1/2) / L of a batch of L average exactly 1/2, so over one pass, where each question
    is ranked at most once, the percentiles sum to half the number of questions ranked."""
    est = dif.rank_difficulty(
        _questions(n), _oracle(lambda q: -int(q[1:])), batch_size=k, passes=1, seed=seed
    )
    ranks = est.metadata["mean_normalised_rank"]
    lengths = _batch_lengths(n, k)
    assert len(ranks) == sum(lengths)
    assert sum(ranks.values()) == pytest.approx(0.5 * len(ranks))
    expected = sorted((p + 0.5) / length for length in lengths for p in range(length))
    assert sorted(ranks.values()) == pytest.approx(expected)
    assert est.metadata["counts"]["singletons_dropped"] == int(n % k == 1)
    assert est.metadata["appearances"] == {f"q{i}": int(f"q{i}" in ranks) for i in range(n)}


def test_percentiles_average_over_passes():
    # every pass ranks all four questions in one batch in the same order: the mean is that pass's value
    est = dif.rank_difficulty(_questions(4), _oracle(lambda q: int(q[1:])), batch_size=4, passes=3)
    assert est.metadata["mean_normalised_rank"] == pytest.approx(
        {"q0": 1 / 8, "q1": 3 / 8, "q2": 5 / 8, "q3": 7 / 8}
    )
    assert est.metadata["appearances"] == {f"q{i}": 3 for i in range(4)}
    assert est.metadata["params"]["passes"] == 3 and est.metadata["method"] == "self_rank"
