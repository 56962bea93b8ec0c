"""Per-model Bayesian linear regressions that share one design matrix across targets.

For every model ``a`` and target ``t`` (quality, cost, latency, failure):
``y_t = x . theta_{a,t} + noise``, prior ``theta ~ N(mu0 e_0, sigma^2 / lambda I)`` (the prior mean sits
on the bias coordinate). All targets of a model see the same contexts, so they share the precision
matrix ``P_a = lambda I + sum x x^T`` and its inverse; only the right-hand sides ``B_a`` differ.

State is sufficient statistics only (P, B, sum y^2, counts), so learning is order-independent without
discounting: refitting from the log reproduces the online state exactly.

Forgetting (``discount`` g < 1) runs on one clock for every model: the clock advances by one with every
observation learned, of any model, and an observation learned ``a`` ticks ago weighs g^a. A model's
statistics are decayed when it learns (exactly), and between its observations its predictive variance
grows as g^-a up to the prior's (see predict). So a model nobody has tried for a while becomes uncertain
again and gets re-checked, and a model that changed is re-learned from its recent outcomes. Refitting
the log in its order reproduces the online state exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ArmModels"]

_REINVERT_EVERY = 256  # Sherman-Morrison drifts slowly; re-invert P from scratch this often


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.outer(a, b) as a BLAS product with an inner dimension of 1: the same products (up to the sign
    of an exact zero), about 3x faster for d x d matrices, which np.outer fills row by row."""
    return np.dot(a[:, None], b[None, :])


class ArmModels:
    """Stacked state for K models in dimension d with T targets (arrays grow as models/features appear)."""

    def __init__(self, n_targets: int, prior_precision: float, discount: float) -> None:
        self.n_targets = n_targets
        self.lam = float(prior_precision)
        self.discount = float(discount)
        self.dim = 0
        self.P = np.zeros((0, 0, 0))  # precision (prior + data)
        self.Pinv = np.zeros((0, 0, 0))
        self.B = np.zeros((0, 0, n_targets))  # sum x y^T (data only; the prior term is added live)
        # Pinv @ B per model, cached for fast predictions; laid out (d, K, T) so that x @ theta.reshape(d, -1)
        # predicts every target of every model in one GEMV.
        self.theta = np.zeros((0, 0, n_targets))
        self.yy = np.zeros((0, n_targets))  # sum y^2
        self.n = np.zeros(0)  # (discounted) observation count
        self.seen = np.zeros(0)  # observations ever learned (not discounted)
        self.clock = 0.0  # observations learned by every model so far: the forgetting clock
        self.last = np.zeros(0)  # clock when each model's statistics were last decayed
        self.ssr = np.zeros((0, n_targets))  # ridge residual: sum y^2 - theta.B (see refresh)
        self._since_inverse = np.zeros(0, dtype=np.int64)

    @property
    def n_arms(self) -> int:
        return int(self.n.shape[0])

    # -- shape changes ----------------------------------------------------------------------------
    def add_arm(self) -> int:
        d, t = self.dim, self.n_targets
        self.P = np.concatenate([self.P, (self.lam * np.eye(d))[None]])
        self.Pinv = np.concatenate([self.Pinv, (np.eye(d) / self.lam)[None]])
        self.B = np.concatenate([self.B, np.zeros((1, d, t))])
        self.theta = np.concatenate([self.theta, np.zeros((d, 1, t))], axis=1)
        self.yy = np.concatenate([self.yy, np.zeros((1, t))])
        self.n = np.append(self.n, 0.0)
        self.seen = np.append(self.seen, 0.0)
        self.last = np.append(self.last, self.clock)
        self.ssr = np.concatenate([self.ssr, np.zeros((1, t))])
        self._since_inverse = np.append(self._since_inverse, 0)
        return self.n_arms - 1

    def grow(self, dim: int) -> None:
        """Append feature coordinates. Past contexts had 0 there, so the exact posterior is the old one
        padded with the prior (block-diagonal)."""
        if dim <= self.dim:
            return
        k, old, extra = self.n_arms, self.dim, dim - self.dim
        P = np.zeros((k, dim, dim))
        P[:, :old, :old] = self.P
        Pinv = np.zeros((k, dim, dim))
        Pinv[:, :old, :old] = self.Pinv
        idx = np.arange(old, dim)
        P[:, idx, idx] = self.lam
        Pinv[:, idx, idx] = 1.0 / self.lam
        pad = ((0, 0), (0, extra), (0, 0))
        self.P, self.Pinv = P, Pinv
        self.B = np.pad(self.B, pad)
        self.theta = np.pad(self.theta, ((0, extra), (0, 0), (0, 0)))
        self.dim = dim

    # -- predictions ------------------------------------------------------------------------------
    def predict(self, x: np.ndarray, prior_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean of every target for every model, (K, T), and x^T P^-1 x, (K,)."""
        k, d = self.n_arms, self.dim
        v = (self.Pinv.reshape(k * d, d) @ x).reshape(k, d)  # one GEMV for all models
        mean = (x @ self.theta.reshape(d, -1)).reshape(k, self.n_targets)  # and one for every mean
        # The prior mean mu0 sits on the bias coordinate: its pull on the posterior mean is
        # lam (P^-1 x)_0 mu0, added live because the pooled prior moves with every observation.
        mean += (self.lam * v[:, :1]) * prior_mean
        return mean, np.maximum(v @ x, 0.0)

    def staleness(self) -> np.ndarray:
        """Per model, g^-(ticks since its statistics were last decayed): how much its data has faded."""
        return np.power(self.discount, self.last - self.clock)

    def age_variance(self, variance: np.ndarray, xx: float | np.ndarray, noise: np.ndarray,
                     idx: np.ndarray | None = None) -> np.ndarray:
        """Predictive ``variance`` ((..., K, T), as learned) after each model's data faded since it was
        last decayed: times g^-age (the data part of its precision shrank by g^age), at most the prior's
        (x.x / lambda) * noise. The mean is left as last learned: what we knew, now less sure."""
        age = self.staleness() if idx is None else self.staleness()[idx]
        cap = (np.asarray(xx, dtype=float)[..., None, None] / self.lam) * noise
        return np.minimum(variance * age[:, None], cap)

    # -- learning ---------------------------------------------------------------------------------
    def update(self, arm: int, x: np.ndarray, y: np.ndarray) -> None:
        """Recursive least squares step (Sherman-Morrison), exact up to rounding."""
        g = self.discount
        self.clock += 1.0
        self.seen[arm] += 1.0
        if g < 1.0:
            self._decay(arm, g ** (self.clock - self.last[arm]))
        self.last[arm] = self.clock
        P, Pinv, theta = self.P[arm], self.Pinv[arm], self.theta[:, arm]
        P += _outer(x, x)
        B = self.B[arm]
        B += x[:, None] * y
        self.yy[arm] += y * y
        self.n[arm] += 1.0
        self._since_inverse[arm] += 1
        if g < 1.0 or self._since_inverse[arm] >= _REINVERT_EVERY:
            self._reinvert(arm)
            self.refresh(arm)
            return
        v = Pinv @ x
        gain = v / (1.0 + float(v @ x))
        Pinv -= _outer(gain, v)
        theta += gain[:, None] * (y - x @ theta)
        self.ssr[arm] = self.yy[arm] - np.add.reduce(theta * B, axis=0)

    def shift_targets(self, arm: int, x: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Replace an already-learned observation's targets (late feedback): P is unchanged."""
        self.B[arm] += np.outer(x, new - old)
        self.yy[arm] += new * new - old * old
        self.refresh(arm)

    def own_prediction(self, arm: int, x: np.ndarray, prior_mean: np.ndarray) -> tuple[np.ndarray, float]:
        """One model's posterior mean of every target at ``x`` (T,) and x^T P^-1 x (predict(), for one)."""
        v = self.Pinv[arm] @ x
        mean = x @ self.theta[:, arm] + (self.lam * v[0]) * prior_mean
        return mean, max(float(v @ x), 0.0)

    def rebuild(self, arm: int, X: np.ndarray, Y: np.ndarray, ticks: np.ndarray) -> None:
        """Replace one model's statistics by those of the observations (X, Y) learned at ``ticks``
        alone, with their forgetting weights as of the model's last tick (a detected change)."""
        w = self.discount ** (self.last[arm] - ticks) if self.discount < 1.0 else np.ones(ticks.shape[0])
        Xw = X * w[:, None]
        self.set_statistics(arm, Xw.T @ X, Xw.T @ Y, (w[:, None] * Y * Y).sum(axis=0), float(w.sum()))

    def set_statistics(self, arm: int, S: np.ndarray, B: np.ndarray, yy: np.ndarray, n: float) -> None:
        """Install batch sufficient statistics (fit from a log or a dataset), as of the current clock."""
        self.P[arm] = S + self.lam * np.eye(self.dim)
        self.B[arm] = B
        self.yy[arm] = yy
        self.n[arm] = n
        self._reinvert(arm)
        self.refresh(arm)

    def _decay(self, arm: int, g: float) -> None:
        eye = self.lam * np.eye(self.dim)
        self.P[arm] = g * (self.P[arm] - eye) + eye
        self.B[arm] *= g
        self.yy[arm] *= g
        self.n[arm] *= g

    def _reinvert(self, arm: int) -> None:
        self.Pinv[arm] = np.linalg.inv(self.P[arm])
        self._since_inverse[arm] = 0

    def refresh(self, arm: int) -> None:
        """Recompute one model's cached posterior mean and residual sum of squares from its statistics.

        The residual term is the ridge objective at its minimum, ``sum y^2 - theta.B`` (the quantity the
        normal-inverse-gamma posterior of the noise variance uses); it depends on this model's
        statistics alone, so online and batch learning agree exactly.
        """
        theta = self.Pinv[arm] @ self.B[arm]
        self.theta[:, arm] = theta
        self.ssr[arm] = self.yy[arm] - np.einsum("dt,dt->t", theta, self.B[arm])
