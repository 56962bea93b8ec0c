"""Reference points every honest router comparison needs, computed from full-information data."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..config import RewardWeights
from ..datasets.base import FullInfoDataset
from ..reward import rewards

__all__ = ["BASELINES", "Reference", "reference_points", "reward_matrix"]

BASELINES = ("best_single", "cheapest", "random", "best_fixed_per_task", "oracle")


@dataclass(frozen=True, slots=True)
class Reference:
    mean_quality: float
    mean_cost_usd: float
    mean_latency_s: float | None
    mean_reward: float

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def reward_matrix(data: FullInfoDataset, weights: RewardWeights) -> np.ndarray:
    """(n, K) reward of every model on every prompt."""
    return rewards(data.quality, data.cost_usd, weights, data.latency_s)


def _reference(data: FullInfoDataset, R: np.ndarray, pick: np.ndarray) -> Reference:
    """Mean components when prompt i goes to model pick[i]."""
    rows = np.arange(len(data))
    latency = None if data.latency_s is None else float(data.latency_s[rows, pick].mean())
    return Reference(float(data.quality[rows, pick].mean()), float(data.cost_usd[rows, pick].mean()), latency, float(R[rows, pick].mean()))


def reference_points(data: FullInfoDataset, weights: RewardWeights) -> dict[str, Reference]:
    """best_single: the one model with the highest mean reward; cheapest: the lowest mean cost;
    random: a uniform pick (its expectation); best_fixed_per_task: the best model of each task, chosen
    in hindsight; oracle: the best model for every prompt (ties to the cheaper)."""
    n = len(data)
    if n == 0:
        raise ValueError("no prompts")
    R = reward_matrix(data, weights)
    out: dict[str, Reference] = {}
    out["best_single"] = _reference(data, R, np.full(n, int(R.mean(axis=0).argmax())))
    out["cheapest"] = _reference(data, R, np.full(n, int(data.cost_usd.mean(axis=0).argmin())))
    latency = None if data.latency_s is None else float(data.latency_s.mean())
    out["random"] = Reference(float(data.quality.mean()), float(data.cost_usd.mean()), latency, float(R.mean()))
    per_task = np.empty(n, dtype=np.int64)
    for task in np.unique(data.tasks):
        rows = data.tasks == task
        per_task[rows] = int(R[rows].mean(axis=0).argmax())
    out["best_fixed_per_task"] = _reference(data, R, per_task)
    # lexsort: the last key is primary (highest reward), then the lowest cost breaks ties
    best = np.array([np.lexsort((data.cost_usd[i], -R[i]))[0] for i in range(n)])
    out["oracle"] = _reference(data, R, best)
    return out
