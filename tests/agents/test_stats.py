import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_agents.stats import bootstrap_ci, mcnemar_exact


@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(0, 10))
@settings(max_examples=40, deadline=None)
def test_bootstrap_interval_contains_mean_and_is_ordered(values, seed):
    mean, lo, hi = bootstrap_ci(values, resamples=300, seed=seed)
    assert lo <= mean + 1e-12 and mean <= hi + 1e-12
    assert 0.0 <= lo <= hi <= 1.0
    assert mean == pytest.approx(np.mean(values))


def test_bootstrap_interval_shrinks_with_more_questions():
    rng = np.random.default_rng(0)
    small = rng.random(50) < 0.5
    large = rng.random(2000) < 0.5
    _, lo_s, hi_s = bootstrap_ci(small)
    _, lo_l, hi_l = bootstrap_ci(large)
    assert hi_l - lo_l < hi_s - lo_s


def test_bootstrap_over_seeds_is_wider_when_seeds_disagree():
    q = 200
    agree = np.tile((np.arange(q) % 2 == 0).astype(float), (3, 1))
    disagree = np.stack([np.ones(q), np.zeros(q), (np.arange(q) % 2 == 0).astype(float)])
    _, lo_a, hi_a = bootstrap_ci(agree)
    _, lo_d, hi_d = bootstrap_ci(disagree)
    assert hi_d - lo_d > hi_a - lo_a


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1, 0], confidence=1.5)


def test_mcnemar_matches_binomial_tail():
    a = [True] * 10 + [False] * 2 + [True] * 5
    b = [False] * 10 + [True] * 2 + [True] * 5
    out = mcnemar_exact(a, b)
    assert (out["only_a"], out["only_b"]) == (10, 2)
    expected = 2 * sum(math.comb(12, i) for i in range(3)) / 2**12
    assert out["p_value"] == pytest.approx(expected)
    assert mcnemar_exact(a, a)["p_value"] == 1.0


def test_mcnemar_rejects_unpaired():
    with pytest.raises(ValueError, match="paired"):
        mcnemar_exact([True], [True, False])
