"""The intervals' stated level is their real level: every "95%" in a report rests on these checks.

For many Bernoulli questions the bootstrap distribution of the mean is close to normal with standard
deviation sqrt(p(1-p)/n), so a percentile interval at level c has half-width z_{(1+c)/2} * sd on each side.
A 90% interval labelled 95% is 16% narrower, far outside the few-percent noise of 20,000 resamples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from ilr_agents.stats import bootstrap_average_ci, bootstrap_ci, mcnemar_exact

N = 400
HALF = np.array([1.0] * (N // 2) + [0.0] * (N // 2))  # p = 0.5, sd of the mean = 0.025
SD = math.sqrt(0.25 / N)


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.8, 0.5])
def test_interval_half_widths_match_the_normal_quantile_of_the_stated_level(confidence):
    mean, lo, hi = bootstrap_ci(HALF, confidence=confidence, resamples=20000, seed=3)
    z = norm.ppf(0.5 + confidence / 2)
    assert mean == 0.5
    assert (mean - lo) / SD == pytest.approx(z, rel=0.06)
    assert (hi - mean) / SD == pytest.approx(z, rel=0.06)


# continuous outcomes (e.g. partial credit): every resample count moves the quantiles
SCORES = np.random.default_rng(0).random(50)


def test_default_interval_is_95_percent_and_uses_the_documented_defaults():
    _, lo, hi = bootstrap_ci(HALF)
    assert (hi - lo) / (2 * SD) == pytest.approx(norm.ppf(0.975), rel=0.06)
    assert bootstrap_ci(SCORES) == bootstrap_ci(SCORES, confidence=0.95, resamples=2000, seed=0)
    assert bootstrap_ci(SCORES) != bootstrap_ci(SCORES, resamples=2001)
    assert bootstrap_ci(HALF, seed=1) != bootstrap_ci(HALF, seed=0)


def test_percentile_interval_is_the_exact_quantile_of_a_two_point_bootstrap():
    """One question answered right in one of two seeds: every resample's mean is 0 or 1, each with
    probability 1/2, so the 95% interval is exactly [0, 1] and a 40% interval collapses to a point."""
    x = np.array([[1.0], [0.0]])
    assert bootstrap_ci(x, resamples=4000) == (0.5, 0.0, 1.0)
    _, lo, hi = bootstrap_ci(np.array([[1.0], [1.0], [1.0], [0.0]]), confidence=0.4, resamples=4000)
    # resample means of 4 seeds drawn with replacement from {1,1,1,0}: P(mean <= 0.75) = 1 - 0.75**4 = 0.68
    assert (lo, hi) == (0.75, 1.0)


def test_seed_resampling_covers_run_to_run_spread():
    # two seeds that disagree on every question: the question draw cannot move the mean, only seeds can
    x = np.stack([np.ones(N), np.zeros(N)])
    mean, lo, hi = bootstrap_ci(x, resamples=20000, seed=1)
    # mean of 2 seeds drawn with replacement: 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4
    assert (mean, lo, hi) == (0.5, 0.0, 1.0)
    _, lo50, hi50 = bootstrap_ci(x, confidence=0.4, resamples=20000, seed=1)
    assert (lo50, hi50) == (0.5, 0.5)


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_average_interval_level_is_the_stated_level(confidence):
    # two benchmarks of N questions at p = 0.5: the average's sd is SD / sqrt(2)
    mean, lo, hi = bootstrap_average_ci([HALF, HALF[::-1]], confidence=confidence, resamples=20000, seed=5)
    z = norm.ppf(0.5 + confidence / 2)
    assert mean == 0.5
    assert (mean - lo) / (SD / math.sqrt(2)) == pytest.approx(z, rel=0.06)
    assert (hi - mean) / (SD / math.sqrt(2)) == pytest.approx(z, rel=0.06)


def test_average_interval_defaults_and_seed_sharing():
    assert bootstrap_average_ci([SCORES]) == bootstrap_average_ci(
        [SCORES], confidence=0.95, resamples=2000, seed=0
    )
    assert bootstrap_average_ci([SCORES]) != bootstrap_average_ci([SCORES], resamples=2001)
    assert bootstrap_average_ci([HALF], seed=1) != bootstrap_average_ci([HALF], seed=0)
    # seed k is the same run in every benchmark: two benchmarks whose seeds disagree the same way move
    # together, so the average keeps the full seed spread (0 or 1 with probability 1/4 each)
    x = np.stack([np.ones(N), np.zeros(N)])
    assert bootstrap_average_ci([x, x], resamples=4000) == (0.5, 0.0, 1.0)


def test_every_question_and_single_observations_can_be_drawn():
    # only the first question is right: resamples that draw it reach the top of the interval
    assert bootstrap_average_ci([[1.0, 0.0]], resamples=400) == (0.5, 0.0, 1.0)
    assert bootstrap_ci([1.0, 0.0], resamples=400) == (0.5, 0.0, 1.0)
    assert bootstrap_average_ci([[1.0]]) == (1.0, 1.0, 1.0)
    assert bootstrap_ci([0.0]) == (0.0, 0.0, 0.0)


def test_average_interval_weights_benchmarks_equally():
    small, large = np.ones(10), np.zeros(1000)
    mean, lo, hi = bootstrap_average_ci([small, large])
    assert (mean, lo, hi) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_confidence_outside_the_open_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match=r"^confidence must be in \(0, 1\), got "):
        bootstrap_ci([1.0, 0.0], confidence=bad)
    with pytest.raises(ValueError, match=r"^confidence must be in \(0, 1\), got "):
        bootstrap_average_ci([[1.0, 0.0]], confidence=bad)


def test_bad_shapes_are_refused_with_the_fix():
    with pytest.raises(
        ValueError, match=r"^bootstrap_ci needs at least one observation; got an empty array$"
    ):
        bootstrap_ci([])
    with pytest.raises(ValueError, match=r"^correct must be 1-D or 2-D \(seeds x questions\), got shape"):
        bootstrap_ci(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"^bootstrap_average_ci needs at least one non-empty group$"):
        bootstrap_average_ci([])
    with pytest.raises(ValueError, match=r"^bootstrap_average_ci needs at least one non-empty group$"):
        bootstrap_average_ci([[1.0], []])
    with pytest.raises(ValueError, match=r"^every group needs the same number of seeds, got \[2, 1\]$"):
        bootstrap_average_ci([np.ones((2, 3)), np.ones(3)])
    with pytest.raises(ValueError, match=r"^paired outcomes need equal shapes, got \(1,\) and \(2,\)$"):
        mcnemar_exact([True], [True, False])


def test_mcnemar_counts_belong_to_their_method_and_p_is_capped_at_one():
    a = [True, True, True, False, True]
    b = [False, False, True, True, True]
    assert mcnemar_exact(a, b) == {"only_a": 2, "only_b": 1, "p_value": 1.0}
    assert mcnemar_exact(b, a) == {"only_a": 1, "only_b": 2, "p_value": 1.0}
    assert mcnemar_exact([True] * 6, [False] * 6)["p_value"] == pytest.approx(2 / 2**6)
    assert mcnemar_exact([False] * 3, [False] * 3) == {"only_a": 0, "only_b": 0, "p_value": 1.0}


@given(st.integers(0, 25), st.integers(0, 25), st.integers(0, 10))
@settings(max_examples=60, deadline=None)
def test_mcnemar_p_is_the_two_sided_binomial_p(only_a, only_b, both):
    a = [True] * only_a + [False] * only_b + [True] * both
    b = [False] * only_a + [True] * only_b + [True] * both
    out = mcnemar_exact(a, b)
    n = only_a + only_b
    expected = (
        1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n)
    )
    assert out == {"only_a": only_a, "only_b": only_b, "p_value": pytest.approx(expected)}
