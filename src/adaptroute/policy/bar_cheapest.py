"""The cheapest model whose sampled quality clears a bar (a measured alternative to the bar's price).

Per request, each model's quality is drawn from its posterior; the cheapest model whose draw clears the
bar wins, and when none does, the highest draw. Candidates stop at the cheapest model that plausibly
passes (mean + ``cap_z`` sd >= bar): a pricier one cannot make the task cheaper. The probabilities
have a closed form, so the logged propensity is exact. Used with a task shift of the bar (integral
control on realised quality, see BarControl), this was the bar's rule before the price
(policy.bar_dual) replaced it: a raised bar is cleared most often by the priciest models, so paying
back a shortfall cost several times the cheapest passing model (experiments/results/controls.md).
"""

from __future__ import annotations

import numpy as np

from .thompson import _normal_cdf, win_probabilities

__all__ = ["BAR_CAP_Z", "plausible_cheapest"]

BAR_CAP_Z = 1.0


def plausible_cheapest(
    quality: np.ndarray, sd: np.ndarray, expense: np.ndarray, bar: float, width: float = 1.0, cap_z: float | None = BAR_CAP_Z
) -> tuple[np.ndarray, float]:
    """Selection probabilities of "the cheapest model whose quality draw clears ``bar``, else the
    highest draw", for independent draws N(quality_k, (width * sd_k)^2) clipped to [0, 1], and the
    probability that no draw clears (the best-model fallback)."""
    k = quality.shape[0]
    s = np.maximum(width * sd, 1e-9)
    clear = _normal_cdf((quality - bar) / s)
    clear = np.where(bar > 1.0, 0.0, np.where(bar <= 0.0, 1.0, clear))
    order = np.argsort(expense, kind="stable")
    passing = order[quality[order] + (cap_z or 0.0) * s[order] >= bar] if cap_z is not None else order[:0]
    if passing.size:
        order = order[expense[order] <= expense[passing[0]]]
    p = np.zeros(k)
    none_yet = 1.0
    for i in order:
        p[i] = none_yet * float(clear[i])
        none_yet *= 1.0 - float(clear[i])
    if none_yet > 0:
        sub = np.zeros(k)
        sub[order] = win_probabilities(quality[order], s[order], np.zeros(order.size), np.ones(order.size))
        p += none_yet * sub
    total = float(p.sum())
    return (p / total if total > 0 else np.full(k, 1.0 / k)), none_yet
