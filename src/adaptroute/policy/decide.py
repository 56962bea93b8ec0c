"""Numerical helpers of the policies' decisions: sharing strength across models, and the draw."""

from __future__ import annotations

import numpy as np

__all__: list[str] = []  # internal to adaptroute.policy

_MIN_SPREAD = 0.15  # prior belief: models on one task are rarely assumed closer than this in quality (sd)


def _shrink_quality(mean: np.ndarray, variance: np.ndarray, counts: np.ndarray, offset: np.ndarray | None = None) -> None:
    """Share strength across models, in place, for one context ((K, T) arrays) or many ((n, K, T)).

    Each model's predicted quality is combined with a normal prior centred on the tried models' mean
    prediction, with their spread beyond estimation noise as variance (method of moments, floored at
    _MIN_SPREAD). An untried model then starts where the field is, with the field's spread as its
    uncertainty, instead of anywhere in [0, 1]: with dozens of models, exploration stops chasing hopeless
    ones. ``offset`` (K,), when given, is each model's expected quality relative to the others (from
    configured expectations): the prior of model a is then centred on the field plus offset_a, and the
    spread is what the offsets leave unexplained. (Written with few NumPy calls: on a handful of models
    their overhead is most of the cost.)
    """
    tried = counts >= 1
    n = int(np.count_nonzero(tried))
    if n < 3:
        return
    q, v = mean[..., 0], np.maximum(variance[..., 0], 1e-12)
    q_tried = q[..., tried] if offset is None else q[..., tried] - offset[tried]
    centre = np.add.reduce(q_tried, axis=-1, keepdims=True) / n
    q_tried -= centre
    spread = np.add.reduce(q_tried * q_tried, axis=-1, keepdims=True) / (n - 1)
    spread -= np.add.reduce(v[..., tried], axis=-1, keepdims=True) / n
    tau2 = np.maximum(spread, _MIN_SPREAD**2)
    if offset is not None:
        centre = centre + offset
    precision = 1.0 / v
    precision += 1.0 / tau2
    shrunk = 1.0 / precision
    mean[..., 0] = (q / v + centre / tau2) * shrunk
    variance[..., 0] = shrunk


def _shrink_quality_one(mean: np.ndarray, variance: np.ndarray, tried: np.ndarray, offset: np.ndarray | None = None) -> None:
    """_shrink_quality for one context ((K, T) arrays), with the tried models' indices given: the same
    estimate in fewer, scalar-friendly steps (this runs on every decision)."""
    n = tried.shape[0]
    if n < 3:
        return
    q, v = mean[:, 0], np.maximum(variance[:, 0], 1e-12)
    q_tried = q[tried] if offset is None else q[tried] - offset[tried]
    centre = float(np.add.reduce(q_tried)) / n
    q_tried -= centre
    spread = float(q_tried @ q_tried) / (n - 1) - float(np.add.reduce(v[tried])) / n
    tau2 = max(spread, _MIN_SPREAD**2)
    # Precision-weighted combination of each prediction (variance v) with the field (variance tau2).
    total = v + tau2
    mean[:, 0] = (q * tau2 + v * (centre if offset is None else centre + offset)) / total
    v *= tau2
    v /= total
    variance[:, 0] = v


def _draw(rng: np.random.Generator, p: np.ndarray) -> int:
    """``rng.choice(len(p), p=p)``: the same index from the same single uniform draw, without choice()'s
    argument checks (p comes from _with_floor), which took about 15 µs of every choose()."""
    cdf = np.add.accumulate(p)
    total = float(cdf[-1])
    if not total > 0:  # NaN or no mass: let choice() raise its usual error
        return int(rng.choice(p.shape[0], p=p))
    cdf /= total
    return int(cdf.searchsorted(rng.random(), side="right"))
