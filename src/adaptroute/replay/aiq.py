"""Quality-cost frontiers: the Pareto set, the non-decreasing concave hull, and RouterBench's AIQ."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["aiq", "pareto_front", "quality_hull"]


def pareto_front(cost: Sequence[float], quality: Sequence[float]) -> np.ndarray:
    """Indices of the points no other point beats on both axes (lower cost, higher quality), by cost."""
    c, q = np.asarray(cost, dtype=float), np.asarray(quality, dtype=float)
    order = np.lexsort((-q, c))
    keep, best = [], -np.inf
    for i in order:
        if q[i] > best:
            keep.append(int(i))
            best = q[i]
    return np.array(keep, dtype=np.int64)


def quality_hull(cost: Sequence[float], quality: Sequence[float]) -> np.ndarray:
    """Vertices (cost, quality) of the non-decreasing upper concave hull of the points, by cost.

    Mixing two routers at random reaches any point on the segment between them, which is why
    RouterBench scores the hull rather than the raw points."""
    front = pareto_front(cost, quality)
    pts = np.column_stack([np.asarray(cost, float)[front], np.asarray(quality, float)[front]])
    hull: list[np.ndarray] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (p[0] - x1) <= (p[1] - y1) * (x2 - x1):  # hull[-1] is on or below the chord
                hull.pop()
            else:
                break
        hull.append(p)
    return np.array(hull).reshape(-1, 2)  # (0, 2) when there are no points


def aiq(cost: Sequence[float], quality: Sequence[float], c_max: float) -> float:
    """Average improvement in quality (Hu et al., 2024): the area under the non-decreasing concave hull
    of the (cost, quality) points over [0, c_max], divided by c_max. The hull is 0 left of its cheapest
    point and flat right of its best one, as in RouterBench's reference code."""
    if c_max <= 0:
        raise ValueError("c_max must be > 0")
    hull = quality_hull(cost, quality)
    hull = hull[hull[:, 0] <= c_max]
    if hull.shape[0] == 0:
        return 0.0
    xs = np.append(hull[:, 0], c_max)
    ys = np.append(hull[:, 1], hull[-1, 1])
    return float(np.trapezoid(ys, xs) / c_max) if hasattr(np, "trapezoid") else float(np.trapz(ys, xs) / c_max)
