"""Perception Calibration (ILR paper, Eq. 5): couple each agent's reward to its peers' rewards.

For agent ``i``'s sample ``k`` on one question, with ``m`` agents and peer ``l``'s ``n`` rewards::

    R̄[i,k] = R[i,k] + Σ_{l≠i} clip((R[i,k] − mean R[l]) / (max R[l] − min R[l]), −1/(m−1), 1/(m−1))

The paper leaves ``max R[l] == min R[l]`` undefined. Our rule: the denominator is ``max(range, eps)``.
So when a peer's rewards are constant, the term saturates at ``±1/(m−1)`` (the sign of
``R[i,k] − mean R[l]``) as soon as ``|R[i,k] − mean R[l]| >= eps/(m−1)``, and it is exactly 0 when the
sample ties the peer's mean. Each term lies in ``[−1/(m−1), 1/(m−1)]``, so the total shift lies in
``[−1, 1]``. With one agent (m = 1) there are no peers and calibration is the identity.

What calibration can and cannot change (checked in tests/agents/test_calibration.py): without the clip, Eq. 5
is an affine map of ``R[i,·]`` per question (slope m, a constant offset), and std-normalised GRPO
advantages ``(R − mean)/std`` ignore affine maps with positive slope. Therefore:

* **Binary rewards** (0/1 correctness): Eq. 5 changes nothing in std-normalised advantages, for any m.
  Even where the clip binds, a two-valued reward is mapped by an increasing function, which on two points
  is always affine.
* **Graded rewards** (reward-model scores, partial credit, a format term): the advantages change only
  where the clip binds for some of an agent's samples, i.e. against a peer whose rewards are narrow
  or constant on that question.
* **``scale_rewards="none"``** (TRL option, unscaled advantages ``R − mean``): calibration rescales each
  question's advantages (unclipped, agent i's by ``1 + Σ_l 1/range_l``; uniformly within a question for
  m = 2, and on every sample only where no clip binds), i.e. a per-question learning-rate change.

Settings where calibration matters: a reward model (``ilr_agents.rewards.RewardModelReward``) or another
graded reward, and/or ``scale_rewards="none"``. With binary correctness and the default
``scale_rewards="group"`` it is a documented no-op, kept for fidelity to the paper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_EPS = 1e-8


class CalibrationError(ValueError):
    """Rewards or peer statistics that Eq. 5 cannot be applied to (the message names the fix)."""


def _as_rewards(rewards: Any) -> np.ndarray:
    try:
        arr = np.asarray(rewards, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(
            f"rewards are not a numeric array ({exc}): give every agent the same number of float rewards"
        ) from exc
    if arr.ndim not in (2, 3):
        raise CalibrationError(
            f"rewards has shape {arr.shape}: expected (m, n) for one question, (questions, m, n) for a batch"
        )
    if arr.shape[-1] < 1 or arr.shape[-2] < 1:
        raise CalibrationError(f"rewards has shape {arr.shape}: need at least one agent and one sample")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError("rewards contain NaN or inf: score every sample (use 0.0 for a failed answer)")
    return arr


def _terms(rewards: np.ndarray, mean: np.ndarray, rng: np.ndarray, *, clip: bool, eps: float) -> np.ndarray:
    """Eq. 5's per-peer terms, shape (..., m_self, m_peer, n); the diagonal (l == i) is zeroed."""
    m = rewards.shape[-2]
    diff = rewards[..., :, None, :] - mean[..., None, :, None]
    term = diff / np.maximum(rng, eps)[..., None, :, None]
    if clip:
        bound = 1.0 / (m - 1)
        term = np.clip(term, -bound, bound)
    term = term * (1.0 - np.eye(m))[:, :, None]
    return term


def calibrate(rewards: Any, *, clip: bool = True, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Calibrated rewards R̄ (same shape as ``rewards``: (m, n) or (questions, m, n)).

    ``clip=False`` gives the unclipped (affine) variant, useful to reason about the method, not to train.
    """
    arr = _as_rewards(rewards)
    if eps <= 0:
        raise CalibrationError(f"eps={eps}: must be > 0 (it replaces a zero reward range)")
    m = arr.shape[-2]
    if m == 1:
        return arr.copy()
    mean = arr.mean(-1)
    rng = arr.max(-1) - arr.min(-1)
    return arr + _terms(arr, mean, rng, clip=clip, eps=eps).sum(-2)


def peer_statistics(rewards: Any) -> dict[str, np.ndarray]:
    """Each agent's mean, max and min over its n samples, shape (..., m): what its peers need for Eq. 5."""
    arr = _as_rewards(rewards)
    return {"mean": arr.mean(-1), "max": arr.max(-1), "min": arr.min(-1)}


def group_advantages(rewards: Any, *, scale: str = "group", eps: float = 1e-4) -> np.ndarray:
    """GRPO advantages over the last axis, as TRL computes them (Bessel-corrected std, ``+ eps``)."""
    arr = np.asarray(rewards, dtype=np.float64)
    centred = arr - arr.mean(-1, keepdims=True)
    if scale == "none":
        return centred
    if scale != "group":
        raise CalibrationError(f"scale={scale!r}: use 'group' (std-normalised) or 'none'")
    std = arr.std(-1, ddof=1, keepdims=True) if arr.shape[-1] > 1 else np.zeros_like(centred)
    return centred / (std + eps)


def calibration_shift_stats(rewards: Any, *, eps: float = DEFAULT_EPS) -> dict[str, float]:
    """How much Eq. 5 moved the rewards and, more to the point, the advantages GRPO trains on.

    ``clip_fraction``: share of (sample, peer) terms where the clip binds; ``groups_changed``: share of
    (question, agent) groups whose std-normalised advantages moved by more than 1e-6.
    """
    arr = _as_rewards(rewards)
    if arr.ndim == 2:
        arr = arr[None]
    cal = calibrate(arr, eps=eps)
    shift = cal - arr
    m = arr.shape[-2]
    stats = {
        "shift_mean": float(shift.mean()),
        "shift_abs_mean": float(np.abs(shift).mean()),
        "shift_abs_max": float(np.abs(shift).max()),
        "clip_fraction": 0.0,
        "groups_changed": 0.0,
    }
    if m > 1:
        mean, rng = arr.mean(-1), arr.max(-1) - arr.min(-1)
        raw_terms = _terms(arr, mean, rng, clip=False, eps=eps)
        off_diag = ~np.eye(m, dtype=bool)
        binds = (np.abs(raw_terms) > 1.0 / (m - 1) + 1e-12)[:, off_diag]
        stats["clip_fraction"] = float(binds.mean())
        moved = np.abs(group_advantages(cal, eps=1e-12) - group_advantages(arr, eps=1e-12)).max(-1)
        stats["groups_changed"] = float((moved > 1e-6).mean())
    return stats
