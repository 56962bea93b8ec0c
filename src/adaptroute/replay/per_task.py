"""simulate's "per_task" section: each task's mean quality and cost, and against a bar, the cheapest
single model that meets it in hindsight (what routing has to beat)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..datasets.base import FullInfoDataset
from ..policy.constraints import QualityBar

__all__ = ["cheapest_passing_fixed", "per_task_summary"]


def cheapest_passing_fixed(data: FullInfoDataset, rows: np.ndarray, bar: float) -> dict[str, Any] | None:
    """The cheapest model whose mean quality over ``rows`` meets ``bar``: name, quality, cost; or None."""
    quality = data.quality[rows].mean(axis=0)
    cost = data.cost_usd[rows].mean(axis=0)
    passing = np.flatnonzero(quality >= bar - 1e-12)
    if passing.size == 0:
        return None
    k = int(passing[np.argmin(cost[passing])])
    return {"name": data.models[k], "quality": float(quality[k]), "cost_usd": float(cost[k])}


def hindsight_bar(data: FullInfoDataset, rows: np.ndarray, bar: QualityBar, task: str) -> float | None:
    """The bar of ``task`` as a number: a relative bar times the best single model's mean quality."""
    value = bar.for_task(task)
    if value is None:
        return None
    return float(value * data.quality[rows].mean(axis=0).max()) if bar.relative else float(value)


def per_task_summary(
    data: FullInfoDataset, order: np.ndarray, chosen: np.ndarray, bar: QualityBar | None
) -> dict[str, dict[str, Any]]:
    """For each task: mean_quality and mean_cost_usd of the run, and with a bar, ``bar`` and
    ``cheapest_passing_fixed`` (null when no single model meets it), plus whether the run met it."""
    tasks = data.tasks[order]
    got_q = data.quality[order, chosen]
    got_c = data.cost_usd[order, chosen]
    out: dict[str, dict[str, Any]] = {}
    for task in sorted({str(t) for t in data.tasks}):
        steps = tasks == task
        entry: dict[str, Any] = {"requests": int(steps.sum()), "mean_quality": float(got_q[steps].mean()),
                                 "mean_cost_usd": float(got_c[steps].mean())}
        if bar is not None:
            rows = data.tasks == task
            value = hindsight_bar(data, rows, bar, task)
            entry["bar"] = value
            if value is not None:
                entry["cheapest_passing_fixed"] = cheapest_passing_fixed(data, rows, value)
                entry["bar_met"] = bool(entry["mean_quality"] >= value)
        out[task] = entry
    return out
