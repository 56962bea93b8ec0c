"""The state every decision of a policy derives from what it learned: priors, noise, who was tried.

Prior: configured where set, else the pooled mean of every observation, else defaults.
Noise: each model's residual variance shrunk toward the pooled one by noise_prior_n pseudo-counts.
Quality offsets: where the sharing across models centres each model's prior (see decide._shrink_quality).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arms import ArmModels

__all__: list[str] = []  # internal to adaptroute.policy

# Noise variance assumed before any data, per target: quality and failure live in [0, 1] (0.25 is the
# largest variance such a variable can have); cost and latency get a 50% relative spread (see
# _prior_and_noise).
_DEFAULT_VARIANCE = np.array([0.25, 0.0, 0.0, 0.25])
_DEFAULT_MEAN = np.array([0.5, 0.0, 0.0, 0.0])


@dataclass(frozen=True)
class DecisionState:
    """What every decision needs and only learning changes (Policy caches it until the next change)."""

    prior: np.ndarray  # (K, T) prior means
    noise: np.ndarray  # (K, T) noise variances
    tried: np.ndarray  # indices of the models observed at least once
    # configured expected quality relative to the mean configured one (0 where unset); None: none configured
    quality_offset: np.ndarray | None


def _quality_offsets(configured_quality: np.ndarray) -> np.ndarray | None:
    """Each model's configured expected quality minus the mean of those configured (0 where unset), or
    None when no model has one. Relative, so that a user's guesses count for the ranking they imply,
    not for their level: the level per task comes from the data."""
    known = configured_quality == configured_quality  # not NaN
    if not known.any():
        return None
    return np.where(known, configured_quality - float(configured_quality[known].mean()), 0.0)


def derive_state(sums: np.ndarray, count: float, configured: np.ndarray, arms: ArmModels, noise_prior_n: float) -> DecisionState:
    """The DecisionState of a policy's pooled sums and count, configured priors ((K, T), NaN where
    unset) and per-model statistics."""
    pooled_mean = sums / count if count > 0 else _DEFAULT_MEAN
    prior = np.where(configured != configured, pooled_mean, configured)  # NaN: not configured
    n0 = noise_prior_n
    ssr = np.maximum(arms.ssr, 0.0)
    # np.add.reduce: the same sums as .mean()/.sum(), without their Python wrappers (this runs after
    # every update)
    typical = np.add.reduce(prior, axis=0)
    typical *= typical * (0.25 / prior.shape[0] ** 2)
    default = np.where(_DEFAULT_VARIANCE > 0, _DEFAULT_VARIANCE, typical)
    # n0 pseudo-observations of the pooled residual variance, then each model's own residuals
    pseudo = n0 * default
    pseudo += np.add.reduce(ssr, axis=0)
    pseudo *= n0 / (n0 + float(np.add.reduce(arms.n)))
    noise = (pseudo + ssr) / np.maximum(n0 + arms.n, 1e-12)[:, None]
    tried = (arms.seen >= 1).nonzero()[0]
    return DecisionState(prior, noise, tried, _quality_offsets(configured[:, 0]))
