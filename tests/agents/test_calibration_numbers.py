"""Calibration's reported numbers worked out by hand: the shift statistics the training log shows, TRL's
advantage formula, batched peer statistics, and the exact errors for rewards Eq. 5 cannot take."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilr_agents.calibration import (
    CalibrationError,
    calibrate,
    calibration_shift_stats,
    group_advantages,
    peer_statistics,
)

# agent 0 graded, agent 1 constant: agent 0's terms saturate at +-1 except the tie; agent 1's term against
# agent 0 is (0.5 - 17/30) / 0.8 = -1/12 on every sample
REWARDS = np.array([[1.0, 0.5, 0.2], [0.5, 0.5, 0.5]])


def test_shift_statistics_of_a_hand_worked_example():
    assert calibrate(REWARDS) == pytest.approx(np.array([[2.0, 0.5, -0.8], [5 / 12] * 3]))
    stats = calibration_shift_stats(REWARDS)
    shifts = [1.0, 0.0, -1.0, -1 / 12, -1 / 12, -1 / 12]
    assert stats == pytest.approx(
        {
            "shift_mean": sum(shifts) / 6,
            "shift_abs_mean": sum(abs(s) for s in shifts) / 6,
            "shift_abs_max": 1.0,
            "clip_fraction": 2 / 6,  # agent 0's first and last sample against the constant peer
            "groups_changed": 1 / 2,  # agent 0's advantages move; the constant agent's stay 0
        }
    )
    # a batch of two copies: the same fractions
    assert calibration_shift_stats(np.stack([REWARDS, REWARDS])) == pytest.approx(stats)


def test_shift_statistics_use_the_eps_they_are_given():
    # eps = 2 bounds the constant peer's terms at |r - 0.5| / 2 < 1: nothing binds, the shift is smaller
    stats = calibration_shift_stats(REWARDS, eps=2.0)
    assert stats["clip_fraction"] == 0.0
    assert stats["shift_abs_max"] == pytest.approx(0.25)
    assert calibrate(REWARDS, eps=2.0)[0] == pytest.approx([1.25, 0.5, 0.05])


def test_one_agent_has_no_shift_and_nothing_binds():
    stats = calibration_shift_stats(np.array([[1.0, 0.0, 0.3]]))
    assert stats == {
        "shift_mean": 0.0,
        "shift_abs_mean": 0.0,
        "shift_abs_max": 0.0,
        "clip_fraction": 0.0,
        "groups_changed": 0.0,
    }


def _binding_fraction(rewards: np.ndarray) -> float:
    """Eq. 5's clip read literally: a (sample, peer) term binds when |r - mean_l| / range_l > 1/(m-1)."""
    m, n = rewards.shape
    terms = [
        (rewards[i, k] - rewards[p].mean()) / (rewards[p].max() - rewards[p].min())
        for i in range(m)
        for p in range(m)
        if p != i
        for k in range(n)
    ]
    return sum(abs(t) > 1 / (m - 1) for t in terms) / len(terms)


def test_clip_fraction_counts_terms_beyond_the_bound_of_one_over_m_minus_one():
    """Three agents, bound 1/2. Against peers of mean 0.5 and range 1, agent 0's r = 1.0 sits exactly on
    the bound (does not bind), r = 1.3 binds, r = 0.4 does not; each peer's 0.0 binds against agent 0."""
    peer = [0.0, 0.5, 1.0]
    rewards = np.array([[1.0, 1.3, 0.4], peer, peer])
    assert _binding_fraction(rewards) == pytest.approx(4 / 18)
    assert calibration_shift_stats(rewards)["clip_fraction"] == pytest.approx(4 / 18)
    m2 = np.array([[1.5, 0.5, 0.5], [0.0, 0.5, 1.0]])  # m = 2, bound 1: a term of exactly 1 does not bind
    assert _binding_fraction(m2) == 0.0
    assert calibration_shift_stats(m2)["clip_fraction"] == 0.0


def test_group_advantages_follow_trls_formula():
    x = np.array([1.0, 0.0, 0.0, 0.0])
    std = math.sqrt(((0.75) ** 2 + 3 * 0.25**2) / 3)  # Bessel-corrected: 0.5
    assert group_advantages(x) == pytest.approx((x - 0.25) / (std + 1e-4), rel=1e-12)
    assert group_advantages([1.0, 0.0]) == pytest.approx(np.array([0.5, -0.5]) / (math.sqrt(0.5) + 1e-4))
    assert group_advantages(x, scale="none") == pytest.approx(x - 0.25)
    one = group_advantages([[3.0]])  # one sample: no spread, advantage 0
    assert one.tolist() == [[0.0]] and one.dtype == np.float64
    with pytest.raises(CalibrationError, match=r"^scale='batch': use 'group' \(std-normalised\) or 'none'$"):
        group_advantages(x, scale="batch")


def test_peer_statistics_are_per_agent_over_samples_in_a_batch():
    batch = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    stats = peer_statistics(batch)
    assert stats["mean"].tolist() == batch.mean(-1).tolist()
    assert stats["max"].tolist() == [[3.0, 7.0, 11.0], [15.0, 19.0, 23.0]]
    assert stats["min"].tolist() == [[0.0, 4.0, 8.0], [12.0, 16.0, 20.0]]


@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (2, 3, 0), (2, 0, 3)])
def test_empty_agents_or_samples_are_refused(shape):
    with pytest.raises(
        CalibrationError, match=r"^rewards has shape .*: need at least one agent and one sample$"
    ):
        calibrate(np.zeros(shape))


def test_non_finite_rewards_and_non_positive_eps_are_refused_with_the_fix():
    with pytest.raises(
        CalibrationError, match=r"^rewards contain NaN or inf: score every sample \(use 0.0 for"
    ):
        calibrate([[1.0, float("inf")], [0.0, 1.0]])
    with pytest.raises(CalibrationError, match=r"^eps=0: must be > 0 \(it replaces a zero reward range\)$"):
        calibrate(REWARDS, eps=0)
