"""A quality bar as a price on quality: the Lagrangian of "least cost subject to mean quality >= bar".

Per task, the bar has a price ``lam`` (expense, i.e. USD and priced latency, per quality point): each
request goes to the model with the best ``lam * quality - expense``, on a Thompson draw of each model's
quality for this request's context. This is the primal-dual form of the task's constraint: the price
starts where the task's cheapest-mix frontier (the lower convex hull of the models' (quality, expense)
estimates) crosses the bar, so the two models at either end of that edge tie on average and each
request's own predictions decide between them (easy prompts to the cheap one), and the price then moves
multiplicatively with the task's realised quality against the bar (dual ascent on the constraint):
below the bar it rises, above it falls. Raising the price buys quality where it is cheapest per point:
a shortfall is paid back through the cheapest model above the bar, and a model 28x pricier for a few
points more is bought only when the price reaches its slope, not whenever a draw happens to clear a
raised bar.
"""

from __future__ import annotations

import math

import numpy as np

from .thompson import win_probabilities

__all__ = ["frontier_price", "priced_choice"]


def frontier_price(quality: np.ndarray, expense: np.ndarray, bar: float) -> float:
    """The slope (expense per quality point) of the cheapest-mix frontier where it reaches ``bar``:
    half the first edge's slope when the cheapest model already meets it, ``inf`` when no model does."""
    k = quality.shape[0]
    cur = int(np.lexsort((-quality, expense))[0])  # the cheapest model (the better one among equals)
    first = True
    while True:
        better = quality > quality[cur] + 1e-12
        if not better.any():
            return math.inf if bar > quality[cur] else (1.0 if first else math.inf)
        slopes = np.full(k, np.inf)
        slopes[better] = (expense[better] - expense[cur]) / (quality[better] - quality[cur])
        nxt = int(np.lexsort((-quality, slopes))[0])
        slope = max(float(slopes[nxt]), 0.0)
        if bar <= quality[cur]:
            return 0.5 * slope if first else slope
        if bar <= quality[nxt]:
            return slope
        cur, first = nxt, False


def priced_choice(quality: np.ndarray, sd: np.ndarray, expense: np.ndarray, price: float, width: float = 1.0) -> np.ndarray:
    """Probabilities that each model has the best ``price * quality - expense`` on independent quality
    draws N(quality, (width * sd)^2) clipped to [0, 1] (exact, by Thompson sampling's integral)."""
    if not math.isfinite(price):  # no finite price meets the bar: the best quality draw
        return win_probabilities(quality, np.maximum(width * sd, 1e-9), np.zeros_like(quality), np.ones_like(quality))
    score = price * quality - expense
    s = np.maximum(price * width * sd, 1e-15)
    return win_probabilities(score, s, -expense, price - expense)
