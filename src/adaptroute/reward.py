"""Reward = w_quality * quality - w_cost * cost_usd - w_latency * latency_s - w_failure * failed.

Components stay separate everywhere else (policies, the log); they meet only here.
"""

from __future__ import annotations

import numpy as np

from .config import RewardWeights
from .errors import ConfigError
from .types import WEIGHT_NAMES, LoggedBatch, Outcome

__all__ = ["logged_weights", "reward", "rewards"]


def reward(outcome: Outcome, weights: RewardWeights) -> float:
    """Scalar reward of one outcome."""
    return float(
        weights.quality * outcome.quality
        - weights.cost * outcome.cost_usd
        - weights.latency * outcome.latency_s
        - weights.failure * float(outcome.failed)
    )


def rewards(
    quality: np.ndarray,
    cost_usd: np.ndarray,
    weights: RewardWeights,
    latency_s: np.ndarray | None = None,
    failed: np.ndarray | None = None,
) -> np.ndarray:
    """Vectorised reward. A component whose weight is 0 is skipped, so missing latency (NaN or None)
    only matters when latency is actually weighted."""
    out = weights.quality * np.asarray(quality, dtype=float) - weights.cost * np.asarray(cost_usd, dtype=float)
    if weights.latency:
        if latency_s is None:
            raise ConfigError("latency is weighted but the data has no latency")
        out = out - weights.latency * np.asarray(latency_s, dtype=float)
    if weights.failure and failed is not None:
        out = out - weights.failure * np.asarray(failed, dtype=float)
    return out


def logged_weights(batch: LoggedBatch) -> tuple[RewardWeights | None, int]:
    """The reward weights of the latest decision that logged them, and how many distinct settings the
    log holds (0 when none was logged: logs older than schema version 2, datasets)."""
    w = batch.weights
    if w is None or not len(w):
        return None, 0
    known = np.flatnonzero(np.isfinite(w).all(axis=1))
    if not known.shape[0]:
        return None, 0
    latest = known[np.argmax(np.asarray(batch.ts)[known])]
    distinct = np.unique(w[known], axis=0).shape[0]
    return RewardWeights(**dict(zip(WEIGHT_NAMES, map(float, w[latest]), strict=True))), int(distinct)
