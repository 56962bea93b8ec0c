"""Predictions for many contexts at once (replay, off-policy evaluation), and the BLAS setting every
bulk computation of the policies runs under."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ..types import TARGETS
from .decide import _shrink_quality
from .records import BatchPrediction

if TYPE_CHECKING:
    from .base import Policy

__all__ = ["one_blas_thread", "predict_rows"]

_T = len(TARGETS)


def predict_rows(
    policy: Policy, X: np.ndarray, eligible: np.ndarray | None, models: Sequence[str] | None, chunk: int
) -> BatchPrediction:
    """Policy.predict_batch's work (the caller holds the policy's lock): every model's matrices side by
    side, one GEMM per chunk of rows instead of one product per row and model."""
    names = policy.models if models is None else tuple(models)
    for name in names:
        policy.add_model(name)
    idx = np.array([policy._models[m] for m in names], dtype=np.intp)
    X = np.asarray(X, dtype=float)
    d = policy._arms.dim
    if X.shape[1] > d:
        policy._arms.grow(X.shape[1])
        d = X.shape[1]
    elif X.shape[1] < d:
        X = np.pad(X, ((0, 0), (0, d - X.shape[1])))
    n, k = X.shape[0], idx.shape[0]
    mask = np.ones((n, k), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    if mask.shape != (n, k) or not mask.any(axis=1).all():
        raise ConfigError("eligible must be an (n, K) mask with at least one model per row")
    prior, noise = policy._prior_and_noise()
    prior, noise = prior[idx], noise[idx]
    Pflat = policy._arms.Pinv[idx].transpose(1, 0, 2).reshape(d, k * d)
    theta = policy._arms.theta[:, idx].reshape(d, k * _T)
    lam = policy._arms.lam
    w = policy.weights.vector()
    counts = policy._arms.seen[idx]
    offset = policy._decision_state().quality_offset
    offset = None if offset is None else offset[idx]
    means = np.empty((n, k, _T))
    reward = np.empty((n, k))
    sd = np.empty((n, k))
    probs = np.empty((n, k))
    share = policy.explore_share()
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        Xc = X[rows]
        V = (Xc @ Pflat).reshape(-1, k, d)  # x^T P^-1 per model (P^-1 is symmetric)
        u2 = np.maximum(np.einsum("rkd,rd->rk", V, Xc), 0.0)
        m = (Xc @ theta).reshape(-1, k, _T) + lam * V[:, :, :1] * prior[None]
        var = u2[:, :, None] * noise[None]
        if policy.bernoulli_noise:
            q = np.clip(m[..., 0], 0.0, 1.0)
            np.maximum(var[..., 0], u2 * q * (1.0 - q), out=var[..., 0])
        # each model on its own evidence, for the policy's exploring share (as _reward_stats(shared=False))
        own = (m.copy(), var) if share > 0.0 and policy.shrinkage else (m, var) if share > 0.0 else None
        if policy.shrinkage:
            var = var.copy() if own is not None else var
            _shrink_quality(m, var, counts, offset)
        xx = np.einsum("rd,rd->r", Xc, Xc) if policy._arms.discount < 1.0 else None
        r, s, low, high = _reward_rows(policy, m, var, w, xx, noise, idx)
        p = policy._probabilities_batch(r, s, low, high, mask[rows])
        if own is not None:
            p *= 1.0 - share
            p += share * policy._explore_probabilities_batch(*_reward_rows(policy, *own, w, xx, noise, idx), mask[rows])
        p = np.where(mask[rows], p, 0.0)
        total = p.sum(axis=1, keepdims=True)
        count = mask[rows].sum(axis=1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), mask[rows] / count)
        floor = np.where(count > 1, policy.floor / count, 0.0)
        probs[rows] = np.where(mask[rows], floor + (1.0 - np.where(count > 1, policy.floor, 0.0)) * p, 0.0)
        means[rows], reward[rows], sd[rows] = m, r, s
    return BatchPrediction(names, means, reward, sd, probs)


def _reward_rows(
    policy: Policy, m: np.ndarray, var: np.ndarray, w: np.ndarray, xx: np.ndarray | None, noise: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Reward mean, sd and bounds of many rows' predicted components ((r, K, T) means and variances)."""
    if xx is not None:  # forgetting: a faded model keeps its estimate, less sure
        var = policy._arms.age_variance(var, xx, noise, idx)
    return m @ w, np.sqrt(var @ (w * w)), *policy._reward_bounds(m, var)


def one_blas_thread() -> Any:
    """Bulk matrix work (fit, predict_batch) on one BLAS thread. On a busy machine a second, spinning
    BLAS thread made a 1M-row retrain 9x slower (12.2 s against 1.3 s with another process on one of two
    cores), while on an idle one the products are a small part of these calls."""
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency; imported when bulk work starts

    return threadpool_limits(limits=1, user_api="blas")
