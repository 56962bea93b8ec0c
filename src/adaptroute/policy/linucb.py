"""LinUCB: the model with the highest upper confidence bound on its reward, plus the floor."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Policy

__all__ = ["LinUCB"]


class LinUCB(Policy):
    """Optimism in the face of uncertainty: score = reward mean + alpha * reward sd.

    Deterministic apart from the floor, which keeps every logged propensity above 0 (and below 1).
    """

    name = "linucb"

    def __init__(self, *, alpha: float = 1.0, **kwargs: Any) -> None:
        if not alpha >= 0:
            raise ConfigError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        super().__init__(**kwargs)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha": self.alpha}

    def _probabilities(self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        score = self.alpha * sd
        score += reward
        np.minimum(score, high, out=score)
        # ufunc reductions rather than .max()/.sum(): same result without the method wrappers' overhead
        best = score >= float(np.maximum.reduce(score)) - 1e-12
        return best / int(np.add.reduce(best))

    def _probabilities_batch(
        self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        score = np.where(mask, np.minimum(reward + self.alpha * sd, high), -np.inf)
        best = mask & (score >= score.max(axis=1, keepdims=True) - 1e-12)
        return best / best.sum(axis=1, keepdims=True)
