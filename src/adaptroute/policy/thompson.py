"""Linear Thompson sampling with exact selection probabilities.

Drawing one posterior sample per model and taking the argmax picks model ``a`` with probability
``P(a wins) = E_z[ prod_{b != a} Phi((mu_a + s_a z - mu_b) / s_b) ]``. We compute that integral with
Gauss-Hermite quadrature and let the router draw from it: the same behaviour as sampling, but the
logged propensity is the exact probability the draw used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import RewardWeights
from ..errors import ConfigError
from .base import Policy
from .drift import MEMORY

__all__ = ["ThompsonSampling", "win_probabilities", "win_probabilities_batch"]

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(16)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
# A model must beat the one with the best mean to win, so P(win) <= Phi((m_a - m_best) / sqrt(s_a^2 + s_best^2));
# below Phi(-3.7) ~ 1e-4 it is left out of the integral (and still gets the floor).
_PRUNE_Z = -3.7


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z) to within 2e-4 (tanh form), computed in place on ``z``: faster than erf on small arrays,
    and exactness is not needed, because the router draws from whatever probabilities this returns."""
    z2 = z * z
    z2 *= 0.0356774081
    z2 += 0.7978845608
    z *= z2
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5
    return z


def win_probabilities(
    mean: np.ndarray, sd: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None
) -> np.ndarray:
    """P(model a has the highest draw) for independent draws N(mean_a, sd_a^2), each clipped to
    [low_a, high_a] when bounds are given (a reward cannot leave the range its components allow)."""
    # np.minimum(np.maximum()) is np.clip and .nonzero()[0] is np.flatnonzero, without their Python
    # wrappers: on arrays of a few models the wrappers cost more than the arithmetic.
    k = mean.shape[0]
    s = np.maximum(sd, 1e-12)
    bounded = low is not None and high is not None
    if bounded:
        mean = np.minimum(np.maximum(mean, low), high)
    best = int(mean.argmax())
    s_best = float(s[best])
    keep = mean - float(mean[best]) > _PRUNE_Z * np.sqrt(s * s + s_best * s_best)
    if bounded:
        keep &= high > float(low[best])  # cannot beat the leader's worst case: out of the race
    contenders = keep.nonzero()[0]
    c = contenders.shape[0]
    if c <= 1:
        out = np.zeros(k)
        out[best] = 1.0
        return out
    if c < k:
        mean, s = mean[contenders], s[contenders]
        if bounded:
            low, high = low[contenders], high[contenders]
    # Laid out as z[b, a, j] = (draw_aj - mean_b) / s_b, where a's j-th quadrature draw sits in b's
    # distribution: the product over b then runs over the first axis, on contiguous rows (several
    # times faster than reducing a short last axis).
    draws = s[:, None] * _NODES
    draws += mean[:, None]
    inv_s = 1.0 / s
    if bounded:
        np.minimum(np.maximum(draws, low[:, None], out=draws), high[:, None], out=draws)
        above = draws >= high[:, None, None]  # b's clipped draw can never exceed its best case
        below = draws < low[:, None, None]
    z = draws * inv_s[:, None, None]
    z -= (mean * inv_s)[:, None, None]
    cdf = _normal_cdf(z)
    if bounded:
        np.copyto(cdf, 1.0, where=above)
        np.copyto(cdf, 0.0, where=below)
    diag = np.arange(c)
    cdf[diag, diag] = 1.0  # a model never has to beat itself
    p = np.multiply.reduce(cdf, axis=0) @ _WEIGHTS
    if c == k:
        return p
    out = np.zeros(k)
    out[contenders] = p
    return out


def win_probabilities_batch(
    mean: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray, mask: np.ndarray, block: int = 4_000_000
) -> np.ndarray:
    """win_probabilities for many rows: (n, K) inputs; ineligible models neither win nor block.

    Each row keeps only its contenders (as in win_probabilities); rows are processed in blocks whose
    width is the largest contender count in the block, so a settled policy costs little per row.
    """
    n, k = mean.shape
    g = _NODES.shape[0]
    s_all = np.maximum(sd, 1e-12)
    mu_all = np.where(mask, np.clip(mean, low, high), -np.inf)
    best = mu_all.argmax(axis=1)
    rows_all = np.arange(n)
    mu_best, s_best, low_best = mu_all[rows_all, best], s_all[rows_all, best], low[rows_all, best]
    gap = (mu_all - mu_best[:, None]) / np.sqrt(s_all**2 + s_best[:, None] ** 2)
    contender = mask & (gap > _PRUNE_Z) & (high > low_best[:, None])
    contender[rows_all, best] = True
    # Contenders first (by mean), so the first c columns of every row hold all of its contenders.
    order = np.argsort(np.where(contender, -mu_all, np.inf), axis=1, kind="stable")
    counts = contender.sum(axis=1)
    out = np.zeros((n, k))
    single = counts == 1
    out[rows_all[single], best[single]] = 1.0
    for c in np.unique(counts[~single]):  # rows with c contenders, in blocks of bounded size
        c = int(c)
        group = np.flatnonzero(counts == c)
        step = max(1, block // (c * c * g))
        for start in range(0, group.shape[0], step):
            rows = group[start : start + step]
            cols = order[rows, :c]
            pick = (rows[:, None], cols)
            mu, s, lo, hi = mu_all[pick], s_all[pick], low[pick], high[pick]
            draws = np.clip(mu[:, :, None] + s[:, :, None] * _NODES, lo[:, :, None], hi[:, :, None])  # (r, c, G)
            z = (draws[:, :, :, None] - mu[:, None, None, :]) / s[:, None, None, :]  # (r, c, G, c)
            cdf = _normal_cdf(z)
            cdf[draws[:, :, :, None] >= hi[:, None, None, :]] = 1.0
            cdf[draws[:, :, :, None] < lo[:, None, None, :]] = 0.0
            diag = np.arange(c)
            cdf[:, diag, :, diag] = 1.0
            out[rows[:, None], cols] = cdf.prod(axis=3) @ _WEIGHTS
    return out


class ThompsonSampling(Policy):
    """Probability matching on the posterior of each model's reward (the default policy).

    ``scale`` widens (>1) or narrows (<1) the posterior used for exploration, as set for ``scale_at``
    models. With K models to choose from, the width is ``scale * sqrt(ln scale_at / ln K)`` (K at least
    3): the best of K draws overshoots its model's mean by about sqrt(2 ln K) posterior sds, so among
    dozens of models plain sampling keeps chasing lucky draws, and among a few it settles too soon.
    ``scale_at=None`` keeps the width at ``scale`` whatever K.

    The narrowed, shared posterior is what makes a short history pay; over a long one it can hold a
    model whose first answers came out low below the field for good. So a share of decisions
    (``explore_share``, growing from 0 to ``explore`` as outcomes accumulate, half of it at
    ``explore_after``, times scale_at / K among more than scale_at models) draws from the full
    posterior of each model's own evidence, without the sharing across models: a model is then judged
    on its own outcomes, and no streak of bad luck early on keeps it out for good. After a detected
    change (policy.drift), and when a model joins a policy that has already learned (Policy.reopen),
    the share jumps back to ``explore`` and fades over 256 observations, the change detector's memory
    (``reexplore=False``: it does not): a favourite that got worse hands its traffic to a model the
    narrowed draws had written off on one unlucky answer, and a newcomer's first unlucky answer does
    not write it off. The logged probabilities are the exact mixture of the two.
    """

    name = "thompson"

    def __init__(self, *, scale: float = 0.5, scale_at: float | None = 10.0, explore: float = 0.6,
                 explore_after: float = 8000.0, reexplore: bool = True, **kwargs: Any) -> None:
        if not scale > 0:
            raise ConfigError(f"scale must be > 0, got {scale}")
        if not 0.0 <= explore <= 1.0:
            raise ConfigError(f"explore must be in [0, 1], got {explore}")
        self.explore = float(explore)
        self.explore_after = float(explore_after)
        self.reexplore = bool(reexplore)
        if scale_at is not None and not scale_at >= 3:
            raise ConfigError(f"scale_at must be a number of models >= 3 (or None), got {scale_at}")
        self.scale = float(scale)
        self.scale_at = None if scale_at is None else float(scale_at)
        super().__init__(**kwargs)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "scale": self.scale, "scale_at": self.scale_at, "explore": self.explore,
                "explore_after": self.explore_after, "reexplore": self.reexplore}

    def width(self, k: int) -> float:
        """The factor on the posterior sd when choosing among ``k`` models."""
        if self.scale_at is None:
            return self.scale
        return self.scale * math.sqrt(math.log(self.scale_at) / math.log(max(k, 3)))

    def explore_share(self) -> float:
        """The share of decisions drawn from the full posterior of each model's own evidence rather
        than the narrowed, shared one."""
        if self.explore_after <= 0.0:
            return self.explore
        clock = self._arms.clock
        r = clock / self.explore_after
        r *= r
        share = self.explore * r / (1.0 + r)
        if self.reexplore and self.reopened_at is not None:
            # A detected change or a newcomer: the settled draws judged every model against a field that
            # just moved, so the full share comes back and fades over the change detector's memory (the
            # window a changed model is rebuilt from).
            since = max(clock - self.reopened_at, 0.0)
            share = max(share, self.explore * math.exp(-since / MEMORY))
        # Among more models than scale_at, a full-width draw chases lucky draws more often (why the
        # narrowed width shrinks with K): so does the share, as scale_at / K.
        if self.scale_at is not None and len(self._models) > self.scale_at:
            share *= self.scale_at / len(self._models)
        return share if share >= 1e-3 else 0.0  # below 0.1%, not worth a second integral per decision

    def _predict_one(self, x: np.ndarray, idx: np.ndarray | None, weights: RewardWeights | None = None) -> tuple[np.ndarray, ...]:
        mean, reward, sd, low, high = self._reward_stats(x, idx, weights)
        p = self._probabilities(reward, sd, low, high)
        a = self.explore_share()
        if a > 0.0:
            p *= 1.0 - a
            p += a * win_probabilities(*self._reward_stats(x, idx, weights, shared=False)[1:])
        return mean, reward, sd, self._with_floor(p)

    def _probabilities(self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """The settled part: the narrowed posterior (see explore_share for the rest)."""
        return win_probabilities(reward, sd * self.width(reward.shape[0]), low, high)

    def sample(self, x: np.ndarray, rng: np.random.Generator | None = None, weights: Any = None) -> int:
        """Thompson sampling itself: one clipped posterior draw per model, the best draw wins (with the
        floor's share of uniform picks). Same distribution as drawing from win_probabilities, which
        integrates exactly this, without the integral."""
        rng = rng or self.rng
        with self._lock:
            _, idx = self._eligible(None)
            k = len(self._models) if idx is None else idx.shape[0]
            u = rng.random() if k > 1 else 1.0
            # the same uniform, past the floor, picks the full posterior of each model's own evidence
            # with probability explore_share()
            full = (u - self.floor) < self.explore_share() * (1.0 - self.floor)
            _, reward, sd, low, high = self._reward_stats(self._fit_dim(x), idx, weights, shared=not full)
        if u < self.floor:
            return int(rng.integers(k))
        centre = np.minimum(np.maximum(reward, low), high)
        width = 1.0 if full else self.width(k)
        draws = centre + (width * sd) * rng.standard_normal(k)
        return int(np.minimum(np.maximum(draws, low), high).argmax())

    def _probabilities_batch(
        self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        counts, row_count = np.unique(mask.sum(axis=1), return_inverse=True)  # each row's eligible count
        widths = np.array([self.width(int(k)) for k in counts])[row_count]
        return win_probabilities_batch(reward, sd * widths[:, None], low, high, mask)

    def _explore_probabilities_batch(
        self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        return win_probabilities_batch(reward, sd, low, high, mask)
