"""Off-policy estimators over plain arrays, independent of any policy object.

Inputs, for ``n`` logged decisions over ``K`` models:

- ``pi`` (n, K): the target policy's probabilities in each logged context;
- ``a`` (n,): index of the logged (chosen) model;
- ``p`` (n,): the logging policy's probability of ``a`` (the propensity);
- ``r`` (n,): the observed reward (or one reward component);
- ``q_hat`` (n, K): a reward model's prediction for every model (DM, DR, Switch-DR).

Every estimator reduces to per-row terms ``num`` and ``den`` with value ``sum(num) / sum(den)``
(``den`` is 1 except for SNIPS). That one shape lets the bootstrap resample every estimate, every
component and the logged policy's own value with the same weights in a single matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, cast

import numpy as np

from ..errors import EstimatorError

__all__ = [
    "DEFAULT_SWITCH_TAU",
    "DM",
    "DR",
    "ESTIMATORS",
    "IPS",
    "SNIPS",
    "Diagnostics",
    "Estimator",
    "EstimatorWarning",
    "SwitchDR",
    "Terms",
    "bootstrap_ratios",
    "check_propensities",
    "diagnose",
    "effective_sample_size",
    "importance_weights",
    "is_deterministic",
    "make_estimator",
    "percentile_interval",
]

# Switch-DR keeps the importance-weighted correction only on rows with w = pi/p <= tau and trusts the
# reward model elsewhere. A fixed tau = 20 bounds every row's correction by 20 x the reward range, so
# the correction's standard error is at most 20 x range / sqrt(n) however small propensities get, while
# rows are handed to the reward model only when the logger chose their model at under 1/20 of the
# target's rate: roughly where IPS stops being informative anyway. adaptroute's own policies log with a
# floor (default 0.02 spread over K models, so w can reach 50 K); a quantile of w would instead move with
# the candidate and hide how much of the estimate rests on the model. Pass switch_tau to override.
DEFAULT_SWITCH_TAU = 20.0

# ESS below max(_MIN_ESS, _MIN_ESS_SHARE * n) triggers a warning: a handful of rows carry the estimate.
_MIN_ESS = 30.0
_MIN_ESS_SHARE = 0.01
_PROB_TOL = 1e-6


class EstimatorWarning(UserWarning):
    """An off-policy estimate that is computable but not trustworthy (tiny ESS, deterministic log)."""


@dataclass(frozen=True, slots=True)
class Terms:
    """Per-row numerator and denominator of an estimate: value = sum(num) / sum(den)."""

    num: np.ndarray
    den: np.ndarray

    def value(self) -> float:
        total = float(self.den.sum())
        return float(self.num.sum()) / total if total > 0 else math.nan

    def restrict(self, keep: np.ndarray) -> Terms:
        """Only the rows in ``keep`` count (a component observed on a subset, e.g. finite latency)."""
        return Terms(np.where(keep, self.num, 0.0), np.where(keep, self.den, 0.0))


def check_propensities(p: np.ndarray) -> None:
    """Refuse propensities that are <= 0, NaN or > 1, saying how many rows are affected."""
    p = np.asarray(p, dtype=float)
    n = p.shape[0]
    bad = ~(p > 0)  # catches NaN too
    if bad.any():
        raise EstimatorError(
            f"{int(bad.sum())} of {n} logged propensities are <= 0 or NaN: importance weights are undefined "
            "there (was the action logged with probability 0, or the propensity never recorded?)"
        )
    high = p > 1.0 + _PROB_TOL
    if high.any():
        raise EstimatorError(f"{int(high.sum())} of {n} logged propensities are > 1")


def _validate(
    pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    pi = np.asarray(pi, dtype=float)
    a = np.asarray(a)
    p = np.asarray(p, dtype=float)
    r = np.asarray(r, dtype=float)
    if pi.ndim != 2 or pi.shape[0] == 0:
        raise EstimatorError(f"pi must be a non-empty (n, K) array, got shape {pi.shape}")
    n, k = pi.shape
    for name, array in (("a", a), ("p", p), ("r", r)):
        if array.shape != (n,):
            raise EstimatorError(f"{name} must have shape ({n},) like pi's rows, got {array.shape}")
    check_propensities(p)
    if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= k:
        raise EstimatorError(f"a must hold integer model indices in [0, {k}), got {a.dtype} in [{a.min()}, {a.max()}]")
    if not np.isfinite(pi).all() or (pi < -_PROB_TOL).any():
        raise EstimatorError("pi holds negative or non-finite probabilities")
    off = np.abs(pi.sum(axis=1) - 1.0) > _PROB_TOL
    if off.any():
        raise EstimatorError(f"{int(off.sum())} of {n} rows of pi do not sum to 1")
    if not np.isfinite(r).all():
        bad_r = int((~np.isfinite(r)).sum())
        raise EstimatorError(f"{bad_r} of {n} rewards are NaN or infinite: drop those rows first")
    if q_hat is not None:
        q_hat = np.asarray(q_hat, dtype=float)
        if q_hat.shape != (n, k):
            raise EstimatorError(f"q_hat must have shape {(n, k)} like pi, got {q_hat.shape}")
        if not np.isfinite(q_hat).all():
            raise EstimatorError("q_hat holds NaN or infinite predictions")
    return pi, a.astype(np.intp), p, r, q_hat


def importance_weights(pi: np.ndarray, a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """w_i = pi(a_i | x_i) / p_i: how many logged rows each row stands for under the target policy."""
    pi = np.asarray(pi, dtype=float)
    return pi[np.arange(pi.shape[0]), np.asarray(a, dtype=np.intp)] / np.asarray(p, dtype=float)


def effective_sample_size(w: np.ndarray) -> float:
    """(sum w)^2 / sum w^2 (Kish): the number of equally weighted rows with the same variance."""
    w = np.asarray(w, dtype=float)
    sq = float(np.dot(w, w))
    return float(w.sum()) ** 2 / sq if sq > 0 else 0.0


def is_deterministic(p: np.ndarray, probabilities: np.ndarray | None = None) -> bool:
    """True when the logger never randomised: every propensity is 1, or (given the full logged
    probability vectors) every row puts all its mass on one model."""
    p = np.asarray(p, dtype=float)
    if p.size and bool(np.all(p >= 1.0 - 1e-12)):
        return True
    if probabilities is not None and np.asarray(probabilities).size:
        return bool(np.all((np.asarray(probabilities) > 0).sum(axis=1) == 1))
    return False


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """How far an importance-weighted estimate can be trusted."""

    n: int
    ess: float
    deterministic: bool
    warnings: tuple[str, ...]


def diagnose(pi: np.ndarray, a: np.ndarray, p: np.ndarray, probabilities: np.ndarray | None = None) -> Diagnostics:
    """ESS and deterministic-logging checks, with a readable message for each problem found."""
    n = int(np.asarray(p).shape[0])
    ess = effective_sample_size(importance_weights(pi, a, p))
    deterministic = is_deterministic(p, probabilities)
    messages = []
    if deterministic:
        messages.append(
            "logging was deterministic (every logged decision had probability 1): the log shows one model per "
            "context only, so IPS, SNIPS, DR and Switch-DR cannot estimate a policy that would choose "
            "differently, and such an estimate is meaningless; DM rests entirely on the reward model"
        )
    threshold = max(_MIN_ESS, _MIN_ESS_SHARE * n)
    if n < _MIN_ESS:
        messages.append(f"only {n} decisions: too few for a reliable estimate; intervals are wide and may be optimistic")
    # Low ESS means poor overlap only when it is well below the rows there are (ESS 21.9 of 22 rows is a
    # small sample, said above, not a candidate that disagrees with the logger).
    if ess < threshold and ess < 0.5 * n:
        messages.append(
            f"effective sample size {ess:.1f} is below {threshold:.0f} (max(30, 1% of {n} rows)): the candidate "
            "rarely picks what the logging policy picked, so a few rows carry importance-weighted estimates (and "
            "DM extrapolates its reward model); treat the estimate and its interval as unreliable"
        )
    return Diagnostics(n, ess, deterministic, tuple(messages))


class Estimator:
    """Base of the named estimators: ``terms`` gives per-row contributions, calling gives the value."""

    name: ClassVar[str]
    needs_q_hat: ClassVar[bool] = False

    def terms(
        self, pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None = None
    ) -> Terms:
        pi, a, p, r, q_hat = _validate(pi, a, p, r, q_hat)
        if self.needs_q_hat and q_hat is None:
            raise EstimatorError(f"{self.name} needs reward-model predictions q_hat")
        return self._terms(pi, a, p, r, q_hat)

    def __call__(
        self, pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None = None
    ) -> float:
        return self.terms(pi, a, p, r, q_hat).value()

    def _terms(self, pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None) -> Terms:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _dm_and_residual(pi: np.ndarray, a: np.ndarray, r: np.ndarray, q_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dm = np.einsum("ik,ik->i", pi, q_hat)
    return dm, r - q_hat[np.arange(a.shape[0]), a]


class IPS(Estimator):
    """Inverse propensity scoring: unbiased, but its variance grows with the importance weights."""

    name = "ips"

    def _terms(self, pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None) -> Terms:
        return Terms(importance_weights(pi, a, p) * r, np.ones_like(r))


class SNIPS(Estimator):
    """Self-normalised IPS: divides by the sum of weights; slightly biased, far steadier than IPS."""

    name = "snips"

    def _terms(self, pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None) -> Terms:
        w = importance_weights(pi, a, p)
        if not w.sum() > 0:
            raise EstimatorError("the target policy gives probability 0 to every logged action: SNIPS is undefined")
        return Terms(w * r, w)


class DM(Estimator):
    """Direct method: the reward model's prediction averaged under the target; no weights, all model bias."""

    name = "dm"
    needs_q_hat = True

    def _terms(self, pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None) -> Terms:
        return Terms(np.einsum("ik,ik->i", pi, cast(np.ndarray, q_hat)), np.ones_like(r))


class DR(Estimator):
    """Doubly robust: DM plus the importance-weighted residual of the logged action; unbiased when
    either the propensities or the reward model are right, with lower variance than IPS when q_hat is good."""

    name = "dr"
    needs_q_hat = True

    def _terms(self, pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None) -> Terms:
        dm, residual = _dm_and_residual(pi, a, r, cast(np.ndarray, q_hat))
        return Terms(dm + importance_weights(pi, a, p) * residual, np.ones_like(r))


@dataclass(frozen=True)
class SwitchDR(Estimator):
    """Switch-DR (Wang, Agarwal and Dudik, 2017): the DR correction only where w <= tau.

    tau = 0 is DM exactly, tau = inf is DR exactly; see DEFAULT_SWITCH_TAU for the default.
    """

    tau: float = DEFAULT_SWITCH_TAU
    name: ClassVar[str] = "switch-dr"
    needs_q_hat: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.tau >= 0:  # NaN too
            raise EstimatorError(f"switch_tau must be >= 0 (inf allowed), got {self.tau}")

    def _terms(self, pi: np.ndarray, a: np.ndarray, p: np.ndarray, r: np.ndarray, q_hat: np.ndarray | None) -> Terms:
        dm, residual = _dm_and_residual(pi, a, r, cast(np.ndarray, q_hat))
        w = importance_weights(pi, a, p)
        return Terms(dm + np.where(w <= self.tau, w * residual, 0.0), np.ones_like(r))

    def __repr__(self) -> str:
        return f"SwitchDR(tau={self.tau})"


ESTIMATORS: dict[str, type[Estimator]] = {cls.name: cls for cls in (IPS, SNIPS, DM, DR, SwitchDR)}


def make_estimator(name: str, switch_tau: float | None = None) -> Estimator:
    """An estimator by name ("ips", "snips", "dm", "dr", "switch-dr"; "switch_dr" accepted too)."""
    key = name.strip().lower().replace("_", "-")
    if key not in ESTIMATORS:
        raise EstimatorError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}")
    if key == "switch-dr":
        return SwitchDR(DEFAULT_SWITCH_TAU if switch_tau is None else float(switch_tau))
    return ESTIMATORS[key]()


# -- bootstrap -------------------------------------------------------------------------------------
# Poisson(1) row weights by inverse CDF on 16 random bits: each probability is within 2^-16 of the
# exact one and the table's mean is exactly 1. Generator.poisson alone spends ~20 s on 200 resamples of
# 1M rows on the project's 2-core machine; this lookup ~1 s.
_POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(24)])
_POISSON_TABLE = np.searchsorted(_POISSON_CDF, (np.arange(1 << 16) + 0.5) / (1 << 16), side="right").astype(np.float32)
_CHUNK_CELLS = 1 << 22  # resample-by-row cells per chunk: 16 MB of float32 weights


def bootstrap_ratios(
    num: np.ndarray, den: np.ndarray, *, n_boot: int = 200, seed: int | np.random.SeedSequence = 0
) -> np.ndarray:
    """Poisson-bootstrap replicates of ``sum(num[:, j]) / sum(den[:, j])`` for every column j: (n_boot, m).

    All columns share each resample's row weights, so estimates stay comparable (a candidate against the
    logged policy). Rows go in chunks of bounded memory. The weighted sums run in float32 (twice as fast)
    on terms centred at the full-sample value, so rounding stays far below the bootstrap spread.
    """
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    if num.ndim == 1:
        num, den = num[:, None], den[:, None]
    if num.shape != den.shape:
        raise EstimatorError(f"num and den must have the same shape, got {num.shape} and {den.shape}")
    if n_boot < 1:
        raise EstimatorError(f"n_boot must be >= 1, got {n_boot}")
    n, m = num.shape
    den_total = den.sum(axis=0)
    center = np.divide(num.sum(axis=0), den_total, out=np.zeros(m), where=den_total > 0)
    sums = np.zeros((n_boot, 2 * m))
    bits = np.random.PCG64(seed)
    rows = max(4, (_CHUNK_CELLS // n_boot) // 4 * 4)  # a multiple of 4: four 16-bit draws per 64-bit word
    block = np.empty((rows, 2 * m), dtype=np.float32)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        size = stop - start
        u = bits.random_raw(-(-n_boot * size // 4)).view(np.uint16)[: n_boot * size]
        weights = _POISSON_TABLE.take(u).reshape(n_boot, size)
        d = den[start:stop]
        block[:size, :m] = num[start:stop] - center * d
        block[:size, m:] = d
        sums += weights @ block[:size]  # one pass over the weights for numerators and denominators
    top, bottom = sums[:, :m], sums[:, m:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return center + np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval per column (resamples with no usable row are ignored)."""
    if not 0.0 < confidence < 1.0:
        raise EstimatorError(f"confidence must be in (0, 1), got {confidence}")
    reps = np.asarray(replicates, dtype=float)
    if reps.ndim == 1:
        reps = reps[:, None]
    alpha = (1.0 - confidence) / 2.0
    low = np.full(reps.shape[1], np.nan)
    high = np.full(reps.shape[1], np.nan)
    usable = np.isfinite(reps).any(axis=0)
    if usable.any():
        low[usable], high[usable] = np.nanquantile(reps[:, usable], [alpha, 1.0 - alpha], axis=0)
    return low, high
