"""Epsilon-greedy on the predicted reward."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Policy

__all__ = ["EpsilonGreedy"]


class EpsilonGreedy(Policy):
    """The best predicted model with probability 1 - epsilon, a uniform pick otherwise."""

    name = "egreedy"

    def __init__(self, *, epsilon: float = 0.1, **kwargs: Any) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)
        super().__init__(**kwargs)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "epsilon": self.epsilon}

    def _probabilities(self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        # ufunc reductions rather than .max()/.sum(): same result without the method wrappers' overhead
        best = reward >= float(np.maximum.reduce(reward)) - 1e-12
        return best * ((1.0 - self.epsilon) / int(np.add.reduce(best))) + self.epsilon / reward.shape[0]

    def _probabilities_batch(
        self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        score = np.where(mask, reward, -np.inf)
        best = mask & (score >= score.max(axis=1, keepdims=True) - 1e-12)
        count = mask.sum(axis=1, keepdims=True)
        return self.epsilon * mask / count + (1.0 - self.epsilon) * best / best.sum(axis=1, keepdims=True)
