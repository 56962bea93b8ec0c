"""Off-policy evaluation of a quality bar: what a policy under other bars would have done on a log.

A bar policy is a stochastic target whose probabilities per logged context are known: the candidate
(cross-fitted on the log, as in ope.evaluate) predicts each model's cost on the decision's context,
each model's quality on the task comes from the task's scored outcomes in the other folds (the bar's
own estimate, policy.bar_control), and the bar's rule turns them into probabilities, with the
policy's floor, exactly as the Router would have at that state. IPS, SNIPS, DR and Switch-DR
then apply unchanged. The bar's feedback on realised quality (the price's dual ascent) depends on
the order the target would have seen outcomes in, which a log of another policy does not hold, so the
evaluated rule is the bar at its steady state: under the price rule, the price factor at which the
rule's expected quality on the task (by the fitted estimates, at the task's mean predicted cost) meets
the bar, which is where the online factor settles; under the shifted-bar rules, the bar unshifted.

Per task, the estimated mean quality and cost under the bar sit next to the bar, so an operator can
read "would quality have met 0.9 on extract, and at what cost" from yesterday's traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import RewardWeights
from ..errors import EstimatorError
from ..policy.base import Policy
from ..policy.constraints import QUALITY_ONLY, BarControl, QualityBar, expense_weights
from ..policy.thompson import ThompsonSampling
from ..types import LoggedBatch
from .estimators import Estimator, bootstrap_ratios, percentile_interval

__all__ = ["bar_rule", "bar_values", "format_per_task", "per_task_under_bar"]

# (fitted policy, rows of the batch, eligible mask over batch.models) -> probabilities (rows, K)
Rule = Callable[[Policy, np.ndarray, np.ndarray], np.ndarray]


def bar_rule(batch: LoggedBatch, bar: QualityBar, weights: RewardWeights, *, held_out: bool = True) -> Rule:
    """The probabilities of a policy under ``bar`` (minimising cost, and latency by ``weights``) for
    the given rows of ``batch``, from a policy fitted on (part of) the log. The bar's own per-task
    quality estimates learn from the outcomes of the other rows (``held_out``, as the policy's
    cross-fitting does) or of every row."""
    per_usd, per_s = expense_weights(weights)
    tasks = np.asarray(batch.tasks).astype(str)
    obs = batch.observations
    scored = np.flatnonzero(np.isfinite(obs.quality))

    def probabilities(policy: Policy, rows: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        control = BarControl(bar)
        learn = scored[~np.isin(obs.row[scored], rows)] if held_out else scored
        for j in learn:
            control.count(str(tasks[obs.row[j]]), batch.models[obs.model[j]], float(obs.quality[j]))
        saved = policy.weights
        policy.weights = QUALITY_ONLY  # the sd predict_batch returns is then quality's own
        try:
            prediction = policy.predict_batch(np.asarray(batch.features)[rows], eligible, batch.models)
        finally:
            policy.weights = saved
        means, sd = prediction.means, prediction.sd
        expense = per_usd * np.maximum(means[:, :, 1], 0.0) + per_s * np.maximum(np.nan_to_num(means[:, :, 2]), 0.0)
        pi = np.zeros((rows.shape[0], len(batch.models)))
        posteriors: dict[tuple[str, bytes], tuple[np.ndarray, np.ndarray]] = {}
        factors: dict[tuple[str, bytes], float] = {}
        for i, row in enumerate(rows):
            cols = np.flatnonzero(eligible[i])
            k = cols.shape[0]
            width = control.width if control.width is not None else (
                policy.width(k) if isinstance(policy, ThompsonSampling) else 1.0)
            task = str(tasks[row])
            quality, spread = means[i, cols, 0], sd[i, cols]
            if control.estimate == "task":  # the same for every row of the task: computed once
                key = (task, cols.tobytes())
                if key not in posteriors:
                    posteriors[key] = control.task_posterior(task, [batch.models[c] for c in cols])
                quality, spread = posteriors[key]
            factor = None
            if control.rule == "price":
                key = (task, cols.tobytes())
                if key not in factors:
                    same = (tasks[rows] == task) & (eligible == eligible[i]).all(axis=1)
                    typical = expense[same][:, cols].mean(axis=0)
                    factors[key] = control.settled_factor(task, quality, spread, typical, width)
                factor = factors[key]
            decided = control.decide(task, quality, spread, expense[i, cols], width, factor=factor)
            if decided is None:  # a task without a bar: the policy's own choice under the weights
                p = _own(policy, np.asarray(batch.features)[row], cols, batch, weights)
            else:
                p = decided[0]
                if k > 1:
                    p = p * (1.0 - policy.floor) + policy.floor / k
            pi[i, cols] = p
        return pi

    return probabilities


def _own(policy: Policy, x: np.ndarray, cols: np.ndarray, batch: LoggedBatch, weights: RewardWeights) -> np.ndarray:
    return policy.predict(x, [batch.models[c] for c in cols], weights).probabilities


def bar_values(batch: LoggedBatch, bar: QualityBar, rows: np.ndarray) -> dict[str, float | None]:
    """Each task's bar as a number (a relative bar times the best model's mean logged quality there)."""
    tasks = np.asarray(batch.tasks).astype(str)[rows]
    out: dict[str, float | None] = {}
    for task in sorted(set(tasks)):
        value = bar.for_task(task)
        if value is not None and bar.relative:
            quality = np.asarray(batch.quality, dtype=float)[rows][tasks == task]
            chosen = np.asarray(batch.chosen)[rows][tasks == task]
            means = [float(np.nanmean(quality[chosen == k])) for k in np.unique(chosen) if np.isfinite(quality[chosen == k]).any()]
            value = value * max(means) if means else None
        out[task] = value
    return out


def per_task_under_bar(
    method: Estimator, pi: np.ndarray, a: np.ndarray, p: np.ndarray, means: np.ndarray, quality: np.ndarray,
    cost: np.ndarray, tasks: np.ndarray, bars: dict[str, float | None], *, n_boot: int, seed: np.random.SeedSequence,
    confidence: float,
) -> dict[str, dict[str, Any]]:
    """Per task: the bar, the estimated mean quality and cost under it (with bootstrap intervals over
    the task's rows), and whether the estimate meets the bar."""
    out: dict[str, dict[str, Any]] = {}
    tasks = np.asarray(tasks).astype(str)
    seeds = seed.spawn(len(bars))
    for (task, value), task_seed in zip(bars.items(), seeds, strict=True):
        keep = tasks == task
        if not keep.any():
            continue
        terms = []
        for r, q_hat in ((quality[keep], means[keep][:, :, 0]), (cost[keep], means[keep][:, :, 1])):
            try:
                terms.append(method.terms(pi[keep], a[keep], p[keep], r, q_hat))
            except EstimatorError:
                terms = []
                break
        if not terms:
            out[task] = {"bar": value, "requests": int(keep.sum()), "mean_quality": None, "mean_cost_usd": None, "bar_met": None}
            continue
        reps = bootstrap_ratios(np.column_stack([t.num for t in terms]), np.column_stack([t.den for t in terms]),
                                n_boot=n_boot, seed=task_seed)
        low, high = percentile_interval(reps, confidence)
        q, c = (min(max(terms[0].value(), 0.0), 1.0), max(terms[1].value(), 0.0))
        out[task] = {
            "bar": value,
            "requests": int(keep.sum()),
            "mean_quality": {"value": q, "low": _finite(low[0]), "high": _finite(high[0])},
            "mean_cost_usd": {"value": c, "low": _finite(low[1]), "high": _finite(high[1])},
            "bar_met": None if value is None else bool(q >= value),
        }
    return out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def format_per_task(per_task: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: per task, the bar and the estimated quality and cost under it."""
    if not per_task:
        return []
    lines = ["", "| task | bar | est. mean quality | est. mean cost (USD) | bar met |", "|---|---|---|---|---|"]
    for task, entry in per_task.items():
        bar = "-" if entry["bar"] is None else f"{entry['bar']:.3f}"
        q, c = entry["mean_quality"], entry["mean_cost_usd"]
        cells = [_interval(q, "{:.3f}"), _interval(c, "{:.6f}")]
        met = "-" if entry["bar_met"] is None else ("yes" if entry["bar_met"] else "no")
        lines.append(f"| {task} | {bar} | {cells[0]} | {cells[1]} | {met} |")
    return lines


def _interval(e: dict[str, Any] | None, fmt: str) -> str:
    if e is None:
        return "n/a"
    ends = ", ".join("n/a" if v is None else fmt.format(v) for v in (e["low"], e["high"]))
    return f"{fmt.format(e['value'])} [{ends}]"
