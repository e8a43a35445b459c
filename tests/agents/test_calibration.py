"""Perception Calibration (Eq. 5): a direct reading, the shift bound, and what it does to GRPO advantages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ilr_agents.calibration import (
    CalibrationError,
    calibrate,
    calibration_shift_stats,
    group_advantages,
    peer_statistics,
)


def eq5_loop(rewards: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Eq. 5 read literally, one sample and one peer at a time."""
    m, n = rewards.shape
    out = rewards.astype(float).copy()
    for i in range(m):
        for k in range(n):
            for peer in range(m):
                if peer == i:
                    continue
                r_l = rewards[peer]
                denom = max(r_l.max() - r_l.min(), eps)
                term = (rewards[i, k] - r_l.mean()) / denom
                out[i, k] += min(max(term, -1 / (m - 1)), 1 / (m - 1))
    return out


reward_values = st.floats(-5, 5, allow_nan=False, width=32)


@st.composite
def reward_matrices(draw: st.DrawFn) -> np.ndarray:
    m = draw(st.integers(1, 5))
    n = draw(st.integers(1, 8))
    return draw(arrays(np.float64, (m, n), elements=reward_values | st.sampled_from([0.0, 1.0])))


@given(reward_matrices())
@settings(max_examples=200, deadline=None)
def test_matches_direct_loop_and_shift_is_bounded(rewards: np.ndarray) -> None:
    cal = calibrate(rewards)
    if rewards.shape[0] == 1:
        np.testing.assert_array_equal(cal, rewards)
    np.testing.assert_allclose(cal, eq5_loop(rewards), rtol=1e-12, atol=1e-12)
    shift = cal - rewards
    assert np.all(shift >= -1 - 1e-12) and np.all(shift <= 1 + 1e-12)


@given(st.lists(reward_matrices(), min_size=1, max_size=1), st.integers(1, 4))
@settings(max_examples=50, deadline=None)
def test_batched_equals_per_question(one: list[np.ndarray], q: int) -> None:
    rng = np.random.default_rng(q)
    m, n = one[0].shape
    batch = rng.normal(size=(q, m, n))
    batch[0] = one[0]
    cal = calibrate(batch)
    for idx in range(q):
        np.testing.assert_allclose(cal[idx], calibrate(batch[idx]), atol=1e-12)


def test_constant_peer_saturates_at_clip_and_ties_give_zero() -> None:
    rewards = np.array([[1.0, 0.5, 0.2], [0.5, 0.5, 0.5]])
    cal = calibrate(rewards)
    np.testing.assert_allclose(cal[0], [1.0 + 1.0, 0.5 + 0.0, 0.2 - 1.0])


@pytest.mark.parametrize("m", [2, 3, 4])
def test_binary_rewards_leave_std_normalised_advantages_unchanged(m: int) -> None:
    rng = np.random.default_rng(m)
    rewards = rng.integers(0, 2, size=(200, m, 8)).astype(float)
    cal = calibrate(rewards)
    np.testing.assert_allclose(
        group_advantages(cal, eps=1e-12), group_advantages(rewards, eps=1e-12), atol=1e-9
    )
    # TRL's +1e-4 in the denominator makes the two differ by less than 1e-3 in practice.
    assert np.abs(group_advantages(cal) - group_advantages(rewards)).max() < 1e-3
    assert calibration_shift_stats(rewards)["groups_changed"] == 0.0


@pytest.mark.parametrize("m", [2, 3])
def test_graded_rewards_against_a_constant_peer_change_advantages(m: int) -> None:
    rewards = np.zeros((m, 4))
    rewards[0] = [0.1, 0.45, 0.55, 0.9]  # graded, e.g. reward-model scores
    rewards[1:] = 0.5  # peers with constant rewards: the clip binds
    cal = calibrate(rewards)
    assert not np.allclose(group_advantages(cal[0]), group_advantages(rewards[0]), atol=1e-3)
    assert calibration_shift_stats(rewards)["clip_fraction"] > 0


def test_unclipped_is_affine_and_scale_none_rescales_for_m2() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.random((50, 2, 6))
    cal = calibrate(rewards, clip=False)
    np.testing.assert_allclose(
        group_advantages(cal, eps=1e-12), group_advantages(rewards, eps=1e-12), atol=1e-9
    )
    a_raw = group_advantages(rewards, scale="none")
    a_cal = group_advantages(cal, scale="none")
    ranges = rewards.max(-1) - rewards.min(-1)
    np.testing.assert_allclose(a_cal, a_raw * (1 + 1 / ranges[:, ::-1])[..., None], atol=1e-9)


def test_an_agent_sees_its_peers_only_through_their_mean_max_and_min() -> None:
    """What lets ILR calibrate inside the rollout: each peer's n rewards enter only as (mean, max, min)."""
    rewards = np.array([[1.0, 0.0, 0.3, 0.7], [0.2, 0.4, 0.4, 0.9], [0.0, 0.0, 1.0, 1.0]])
    stats = peer_statistics(rewards)
    from_stats = rewards[0].copy()
    for peer in (1, 2):
        term = (rewards[0] - stats["mean"][peer]) / (stats["max"][peer] - stats["min"][peer])
        from_stats += np.clip(term, -0.5, 0.5)
    np.testing.assert_allclose(calibrate(rewards)[0], from_stats, atol=1e-12)
    same_stats = rewards.copy()
    same_stats[1] = [0.2, 0.9, 0.375, 0.425]  # other samples, same mean, max and min
    same_stats[2] = [1.0, 0.0, 1.0, 0.0]
    np.testing.assert_allclose(calibrate(same_stats)[0], calibrate(rewards)[0], atol=1e-12)


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(CalibrationError, match="shape"):
        calibrate(np.zeros(3))
    with pytest.raises(CalibrationError, match="NaN"):
        calibrate([[1.0, float("nan")], [0.0, 1.0]])
    with pytest.raises(CalibrationError, match="NaN"):  # a missing score is not silently skipped
        calibrate([[1.0, None], [0.0, 1.0]])
    with pytest.raises(CalibrationError, match="same number"):
        calibrate([[1.0, 0.5], [0.0]])
    assert calibrate([[0.7]]).tolist() == [[0.7]]  # one agent: no peers, the identity
