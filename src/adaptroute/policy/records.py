"""What a policy hands out: its prior for a model, and its predictions for one context or many."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BatchPrediction", "ModelPrior", "Prediction"]


@dataclass(frozen=True, slots=True)
class ModelPrior:
    """What is known about a model before it has been tried (price table, a configured expectation).

    Unset fields fall back to the pooled mean over every model observed so far (empirical Bayes).
    """

    quality: float | None = None
    cost_usd: float | None = None
    latency_s: float | None = None

    def as_array(self) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in (self.quality, self.cost_usd, self.latency_s)] + [0.0])


@dataclass(frozen=True, slots=True)
class BatchPrediction:
    """Predictions for many contexts at once (off-policy evaluation, analysis): arrays over (n, K)."""

    models: tuple[str, ...]
    means: np.ndarray  # (n, K, T)
    reward: np.ndarray  # (n, K)
    sd: np.ndarray  # (n, K)
    probabilities: np.ndarray  # (n, K), 0 where a model was not eligible


@dataclass(frozen=True, slots=True)
class Prediction:
    """A policy's view of one request: per eligible model, predicted components, reward and probability."""

    models: tuple[str, ...]
    means: np.ndarray  # (k, T) in TARGETS order
    reward: np.ndarray  # (k,)
    sd: np.ndarray  # (k,) posterior standard deviation of the reward
    probabilities: np.ndarray  # (k,), sums to 1, every entry >= the floor


def _prior_from_row(row: np.ndarray) -> ModelPrior | None:
    values = [None if np.isnan(v) else float(v) for v in row[:3]]
    return None if all(v is None for v in values) else ModelPrior(*values)
