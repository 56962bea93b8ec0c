"""Choosing the prior precision from data: type-II maximum likelihood (the evidence), as scikit-learn's
BayesianRidge does, for the policies' per-model Bayesian linear regressions.

A warm start hands the policy thousands of observations at once; how strongly their fit should be
regularised is then a question the data can answer, instead of a default tuned on some benchmark.
"""

from __future__ import annotations

import numpy as np

from ..types import LoggedBatch
from .records import ModelPrior

__all__ = ["EVIDENCE_GRID", "evidence_prior_precision", "log_evidence", "select_prior_precision"]

EVIDENCE_GRID = np.logspace(-1, 3, 25)  # 0.1 .. 1000, six points a decade


def log_evidence(X: np.ndarray, y: np.ndarray, prior_mean: float, grid: np.ndarray = EVIDENCE_GRID) -> np.ndarray:
    """Log marginal likelihood of ``y ~ X theta + noise`` for each prior precision in ``grid``.

    Prior theta ~ N(prior_mean e_0, sigma^2 / lam I) (the policies' prior: its mean on the bias
    coordinate, column 0 of X), with the noise variance sigma^2 at its maximum-likelihood value for each
    lam. One eigendecomposition of X^T X serves the whole grid. Constants common to every lam are left
    out, so only differences between entries mean anything.
    """
    n, d = X.shape
    r = y - prior_mean * X[:, 0]  # the prior mean's prediction, taken out
    S = X.T @ X
    eigenvalues, vectors = np.linalg.eigh(S)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    projected = (vectors.T @ (X.T @ r)) ** 2
    lam = np.asarray(grid, dtype=float)[:, None]
    # ||r - X theta||^2 + lam ||theta - theta0||^2 at the posterior mean: r.r - b^T (S + lam I)^-1 b
    fit = float(r @ r) - (projected / (eigenvalues + lam)).sum(axis=1)
    sigma2 = np.maximum(fit / n, 1e-300)
    log_det = np.log(eigenvalues + lam).sum(axis=1)
    return -0.5 * n * np.log(sigma2) + 0.5 * d * np.log(lam[:, 0]) - 0.5 * log_det


def select_prior_precision(
    groups: list[tuple[np.ndarray, np.ndarray, float]], grid: np.ndarray = EVIDENCE_GRID
) -> float:
    """The grid value with the largest total evidence over ``groups`` of (contexts, outcomes, prior
    mean), one group per model: one prior precision shared by every model, as the policies use."""
    total = np.zeros(len(grid))
    for X, y, prior_mean in groups:
        if y.shape[0] > 0:
            total += log_evidence(X, y, prior_mean, grid)
    return float(grid[int(total.argmax())])


def evidence_prior_precision(batch: LoggedBatch, configured: dict[str, ModelPrior | None]) -> float:
    """The prior precision with the most evidence from ``batch``'s quality outcomes, per model
    centred on its configured quality prior, else on the pooled mean (as the policy's prior is)."""
    obs = batch.observations
    known = ~np.isnan(obs.quality)
    if not known.any():
        return 1.0
    features = np.asarray(batch.features, dtype=float)
    pooled = float(obs.quality[known].mean())
    groups = []
    for k, model in enumerate(batch.models):
        rows = known & (obs.model == k)
        prior = configured.get(model)
        centre = prior.quality if prior is not None and prior.quality is not None else pooled
        groups.append((features[obs.row[rows]], obs.quality[rows], centre))
    return select_prior_precision(groups)
