"""The cheapest mix of models whose sampled quality meets a bar: Thompson sampling on the bar's LP.

Per decision, each eligible model's quality is drawn from the policy's posterior, many times over
(a fixed set of standard-normal draws, so the probabilities are a deterministic function of the
policy's state and the logged propensity is the exact one drawn from). For every draw, the linear
programme "least expected cost over a mix of models whose mean quality meets the bar" is solved: its
optimum is the cheapest single model whose draw clears the bar, or a mix of two models, one below and
one above the bar, on the lower edge of the (quality, cost) hull, whose mean quality sits exactly at
the bar. A draw in which no model clears the bar picks its best model. The selection probabilities are
the mean of the draws' optimal mixes. This is Thompson sampling on the constrained problem (as in
LP-based Thompson sampling for bandits with knapsacks): it explores a model as often as the posterior
says it may belong to the cheapest passing mix, and it mixes a cheap model that misses the bar with a
stronger one, which costs less than the cheapest single model that passes when the hull allows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIX_DRAWS", "cheapest_mix"]

MIX_DRAWS = 256  # posterior draws per decision: probabilities to within ~0.03 (sd of a share of 256)
_Z_CACHE: dict[int, np.ndarray] = {}


def _normals(k: int) -> np.ndarray:
    """(MIX_DRAWS, k) fixed standard-normal draws (antithetic pairs, so the mean draw is exactly 0)."""
    z = _Z_CACHE.get(k)
    if z is None:
        half = np.random.default_rng(20_240_515 + k).standard_normal((MIX_DRAWS // 2, k))
        z = _Z_CACHE.setdefault(k, np.concatenate([half, -half]))
    return z


def cheapest_mix(quality: np.ndarray, sd: np.ndarray, expense: np.ndarray, bar: float, width: float = 1.0) -> tuple[np.ndarray, float]:
    """Selection probabilities over the models (the mean over posterior draws of each draw's cheapest
    mix meeting ``bar``), and the share of draws in which no model cleared the bar."""
    k = quality.shape[0]
    if k == 1:
        return np.ones(1), float(quality[0] < bar)
    draws = quality + (width * np.maximum(sd, 1e-9)) * _normals(k)  # (M, k)
    np.clip(draws, 0.0, 1.0, out=draws)
    m = draws.shape[0]
    rows = np.arange(m)
    clear = draws >= bar
    # Single models that clear: their cost; the others: infinite.
    single = np.where(clear, expense[None, :], np.inf)
    best_single = single.argmin(axis=1)
    best_single_cost = single[rows, best_single]
    # Pairs (i below the bar, j above it): the mix whose mean quality is exactly the bar.
    qi, qj = draws[:, :, None], draws[:, None, :]
    ci, cj = expense[None, :, None], expense[None, None, :]
    pair_ok = (~clear)[:, :, None] & clear[:, None, :] & (ci < cj)
    share_j = np.where(pair_ok, (bar - qi) / np.maximum(qj - qi, 1e-12), 0.0)
    pair_cost = np.where(pair_ok, ci + share_j * (cj - ci), np.inf).reshape(m, k * k)
    best_pair = pair_cost.argmin(axis=1)
    best_pair_cost = pair_cost[rows, best_pair]
    p = np.zeros((m, k))
    use_pair = best_pair_cost < best_single_cost
    feasible = np.isfinite(best_single_cost)
    only = feasible & ~use_pair
    p[rows[only], best_single[only]] = 1.0
    pi, pj = np.divmod(best_pair[use_pair], k)
    sj = share_j.reshape(m, k * k)[rows[use_pair], best_pair[use_pair]]
    p[rows[use_pair], pi] += 1.0 - sj
    p[rows[use_pair], pj] += sj
    none = ~feasible
    p[rows[none], draws[none].argmax(axis=1)] = 1.0  # no draw clears: the best draw
    return p.mean(axis=0), float(none.mean())
