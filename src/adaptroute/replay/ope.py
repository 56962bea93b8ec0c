"""Off-policy evaluation of a policy (or other reward weights) on a logged batch.

``evaluate`` answers "what would this policy have earned on the traffic we logged?" without running it.
The candidate's probabilities and reward model are cross-fitted: each fold of decisions is scored by a
clone trained on the other folds' observations only, so DR's reward model never saw the row it corrects
(in-sample fits make DR and DM look better than they are). Estimators live in ``estimators``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..config import RewardWeights
from ..errors import EstimatorError
from ..policy.base import Policy
from ..policy.constraints import QualityBar
from ..reward import rewards
from ..types import TARGETS, LoggedBatch, Observations
from .estimators import (
    DEFAULT_SWITCH_TAU,
    ESTIMATORS,
    Estimator,
    EstimatorWarning,
    SwitchDR,
    Terms,
    bootstrap_ratios,
    check_propensities,
    diagnose,
    importance_weights,
    make_estimator,
    percentile_interval,
)
from .ope_bar import Rule, bar_rule, bar_values, per_task_under_bar
from .ope_text import format_text
from .trust import advise

__all__ = ["COMPONENTS", "Estimate", "OPEResult", "cross_fit", "evaluate", "format_text"]

# Reward components reported next to the reward, in TARGETS order ("failure" is the failed-request rate).
COMPONENTS: tuple[str, ...] = TARGETS
# What each component can be: estimates and interval ends are clipped to it (an importance-weighted
# estimate of a rate can leave [0, 1]; the quantity cannot).
_RANGES: dict[str, tuple[float, float]] = {
    "quality": (0.0, 1.0), "cost_usd": (0.0, math.inf), "latency_s": (0.0, math.inf), "failure": (0.0, 1.0),
}
_ZERO = 1e-12  # values this close to 0 are float noise of a sum that cancels: shown as 0


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its bootstrap percentile interval over ``n`` rows (NaN when n == 0)."""

    value: float
    low: float
    high: float
    n: int

    def clipped(self, low: float = -math.inf, high: float = math.inf) -> Estimate:
        """Clipped to what the quantity allows, with float noise around 0 shown as 0."""

        def fix(x: float) -> float:
            if not math.isfinite(x) and not math.isinf(x):
                return x
            x = min(max(x, low), high)
            return 0.0 if abs(x) < _ZERO else x

        return Estimate(fix(self.value), fix(self.low), fix(self.high), self.n)


@dataclass(frozen=True)
class OPEResult:
    """What ``evaluate`` found: the candidate's estimated reward and components next to the logged
    policy's own observed values, with the diagnostics needed to judge them."""

    estimator: str
    policy: str
    weights: dict[str, float]
    reward: Estimate
    components: dict[str, Estimate]
    logged_reward: Estimate
    logged_components: dict[str, Estimate]
    gain: Estimate  # candidate reward minus logged reward, with a paired bootstrap interval
    ess: float
    n_used: int
    n_excluded: int
    deterministic_logging: bool
    warnings: tuple[str, ...]
    n_boot: int
    confidence: float
    seed: int
    folds: int
    switch_tau: float | None = None
    weights_source: str = "given"  # "given", or "logged" (the weights the log's latest decision was made under)
    by_estimator: dict[str, Estimate] = field(default_factory=dict)  # the reward by every estimator, same resamples
    trusted: str | None = None  # the estimator to read, given ESS and overlap (None: none is reliable)
    trust_reason: str = ""
    max_weight: float = math.nan  # the largest importance weight pi/p among the rows used
    bar: str | None = None  # the quality bar the candidate was evaluated under (see replay.ope_bar)
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)  # under a bar: per task, as ope_bar gives

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; NaN and infinities become None."""
        return _plain(
            {
                "estimator": self.estimator,
                "policy": self.policy,
                "weights": self.weights,
                "reward": self.reward,
                "components": self.components,
                "logged_reward": self.logged_reward,
                "logged_components": self.logged_components,
                "gain": self.gain,
                "ess": self.ess,
                "n_used": self.n_used,
                "n_excluded": self.n_excluded,
                "deterministic_logging": self.deterministic_logging,
                "warnings": self.warnings,
                "n_boot": self.n_boot,
                "confidence": self.confidence,
                "seed": self.seed,
                "folds": self.folds,
                "switch_tau": self.switch_tau,
                "weights_source": self.weights_source,
                "by_estimator": self.by_estimator,
                "trusted": self.trusted,
                "trust_reason": self.trust_reason,
                "max_weight": self.max_weight,
                "bar": self.bar,
                "per_task": self.per_task,
            }
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Estimate):
        return {"value": _plain(value.value), "low": _plain(value.low), "high": _plain(value.high), "n": value.n}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


@dataclass(frozen=True, slots=True)
class _Logged:
    """The logged decisions that enter the estimate, and their observed reward components."""

    rows: np.ndarray  # indices into the batch
    reward: np.ndarray
    components: dict[str, np.ndarray]  # NaN where unknown (latency only)
    n_excluded: int
    notes: tuple[str, ...]


def _logged_outcomes(batch: LoggedBatch, weights: RewardWeights) -> _Logged:
    """A request that failed on every model has a known outcome (quality 0, failure 1), as the policies
    learn it; rows with no outcome yet (no quality, not failed) or an unknown weighted component are left
    out and counted, since nothing says what they earned."""
    failed = np.asarray(batch.failed, dtype=bool)
    quality = np.where(failed & np.isnan(batch.quality), 0.0, batch.quality)
    cost = np.where(failed & np.isnan(batch.cost_usd), 0.0, batch.cost_usd)
    latency = np.asarray(batch.latency_s, dtype=float)
    known = (np.asarray(batch.chosen) >= 0) & np.isfinite(quality) & np.isfinite(cost)
    reward = rewards(quality, cost, weights, latency_s=latency, failed=failed)
    used = known & np.isfinite(reward)
    notes = []
    if (~known).any():
        notes.append(f"{int((~known).sum())} of {len(batch)} decisions have no known outcome yet and were left out")
    if (known & ~used).any():
        missing = int((known & ~used).sum())
        notes.append(f"{missing} decisions without a logged latency were left out (latency is weighted)")
    rows = np.flatnonzero(used)
    components = {
        "quality": quality[rows],
        "cost_usd": cost[rows],
        "latency_s": latency[rows],
        "failure": failed[rows].astype(float),
    }
    return _Logged(rows, reward[rows], components, int(len(batch) - rows.shape[0]), tuple(notes))


def _subset(obs: Observations, keep: np.ndarray) -> Observations:
    return Observations(
        obs.row[keep], obs.model[keep], obs.quality[keep], obs.cost_usd[keep], obs.latency_s[keep], obs.failed[keep]
    )


def cross_fit(
    batch: LoggedBatch,
    candidate: Policy,
    weights: RewardWeights,
    rows: np.ndarray,
    *,
    folds: int = 5,
    seed: int | np.random.SeedSequence = 0,
    rule: Rule | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate's probabilities (len(rows), K) and predicted means (len(rows), K, T) over
    ``batch.models`` for ``rows``, each row scored by a clone fitted without that row's fold.

    Folds are a seeded random split of ``rows``; observations of other decisions (outside ``rows``) train
    every fold. ``folds=1`` fits once on everything and scores in-sample (optimistic for DM and DR).
    A model is eligible where its logged probability is > 0 (and the chosen model always is).
    ``rule`` (e.g. a quality bar's, replay.ope_bar) turns each fold's fitted policy into the
    probabilities instead of the policy's own.
    """
    rows = np.asarray(rows, dtype=np.intp)
    if not 1 <= folds <= max(1, rows.shape[0]):
        raise EstimatorError(f"folds must be in [1, {rows.shape[0]}] (number of usable rows), got {folds}")
    n, k = len(batch), len(batch.models)
    assignment = np.full(n, -1, dtype=np.int64)
    assignment[rows] = np.random.default_rng(seed).permutation(rows.shape[0]) % folds
    eligible = np.asarray(batch.probabilities)[rows] > 0
    eligible[np.arange(rows.shape[0]), np.asarray(batch.chosen)[rows]] = True
    obs = batch.observations
    obs_fold = assignment[obs.row]
    pi = np.empty((rows.shape[0], k))
    means = np.empty((rows.shape[0], k, len(TARGETS)))
    for fold in range(folds):
        held = np.flatnonzero(assignment[rows] == fold)
        policy = candidate.clone()
        policy.weights = weights
        train = obs_fold != fold if folds > 1 else np.ones(len(obs), dtype=bool)
        policy.fit(replace(batch, observations=_subset(obs, train)))
        prediction = policy.predict_batch(np.asarray(batch.features)[rows[held]], eligible[held], batch.models)
        pi[held] = prediction.probabilities if rule is None else rule(policy, rows[held], eligible[held])
        means[held] = prediction.means
    return pi, means


def _estimates(
    method: Estimator,
    pi: np.ndarray,
    a: np.ndarray,
    p: np.ndarray,
    means: np.ndarray,
    logged: _Logged,
    weights: RewardWeights,
    *,
    n_boot: int,
    seed: np.random.SeedSequence,
    confidence: float,
    others: tuple[Estimator, ...] = (),
) -> tuple[Estimate, dict[str, Estimate], Estimate, dict[str, Estimate], Estimate, dict[str, Estimate]]:
    """The candidate's reward and components by ``method``, the logged policy's observed ones, the
    gain, and the reward by each of ``others``, all bootstrapped with the same resamples. q_hat for the
    reward is the fitted model's means combined with the weights; each component uses its own predicted
    mean. Components are clipped to what they can be; the reward to at most the quality weight."""
    targets = {"reward": (logged.reward, means @ weights.vector())}
    for t, name in enumerate(COMPONENTS):
        targets[name] = (logged.components[name], means[:, :, t])
    candidate_terms: list[Terms] = []
    logged_terms: list[Terms] = []
    counts: list[int] = []
    for r, q_hat in targets.values():
        seen = np.isfinite(r)  # latency may be missing on some rows: those rows drop out of it alone
        counts.append(int(seen.sum()))
        r = np.where(seen, r, 0.0)
        candidate_terms.append(method.terms(pi, a, p, r, q_hat).restrict(seen))
        logged_terms.append(Terms(r, seen.astype(float)))
    reward, reward_hat = np.where(np.isfinite(logged.reward), logged.reward, 0.0), targets["reward"][1]
    other_terms, undefined = [], set()
    for o in others:
        try:
            other_terms.append(o.terms(pi, a, p, reward, reward_hat))
        except EstimatorError:  # e.g. SNIPS when the candidate never picks a logged action: shown as n/a
            undefined.add(o.name)
            other_terms.append(Terms(np.zeros_like(reward), np.zeros_like(reward)))
    every = candidate_terms + logged_terms + other_terms
    replicates = bootstrap_ratios(
        np.column_stack([t.num for t in every]), np.column_stack([t.den for t in every]), n_boot=n_boot, seed=seed
    )
    low, high = percentile_interval(replicates, confidence)
    m = len(targets)
    sizes = counts * 2 + [0 if o.name in undefined else counts[0] for o in others]
    bounds = [(-math.inf, weights.quality)] + [_RANGES[name] for name in COMPONENTS]
    bounds = bounds * 2 + [bounds[0]] * len(others)
    out = [
        Estimate(t.value(), float(lo), float(hi), c).clipped(*bound)
        for t, lo, hi, c, bound in zip(every, low, high, sizes, bounds, strict=True)
    ]
    # Paired: both values move together under each resample, so the gain's interval is much tighter
    # than the two separate intervals suggest.
    gain_low, gain_high = percentile_interval(replicates[:, 0] - replicates[:, m], confidence)
    gain = Estimate(out[0].value - out[m].value, float(gain_low[0]), float(gain_high[0]), counts[0]).clipped()
    names = list(targets)[1:]
    by_other = {o.name: e for o, e in zip(others, out[2 * m :], strict=True)}
    return (out[0], dict(zip(names, out[1:m], strict=True)), out[m], dict(zip(names, out[m + 1 : 2 * m], strict=True)),
            gain, by_other)


def evaluate(
    batch: LoggedBatch,
    candidate: Policy,
    weights: RewardWeights | None = None,
    estimator: str = "dr",
    *,
    n_boot: int = 200,
    seed: int = 0,
    folds: int = 5,
    switch_tau: float | None = None,
    confidence: float = 0.95,
    refit: bool = True,
    always: str | None = None,
    bar: QualityBar | None = None,
) -> OPEResult:
    """Estimate the reward ``candidate`` would have earned on ``batch`` under ``weights`` (default: the
    candidate's own), with each component, bootstrap intervals and the logged policy's value beside it.

    ``refit=True`` (a policy kind and its settings): the candidate learns from the log, cross-fitted.
    ``refit=False`` (a trained policy, e.g. from a saved file): its probabilities are used as they are;
    only DR's reward model is cross-fitted. ``always="gpt-4o"``: the policy that always picks that model.
    The reward is also given by every estimator (``by_estimator``), with which one to trust and why.
    ``bar``: the candidate routes under this quality bar (replay.ope_bar), and ``per_task`` gives each
    task's estimated quality and cost under it.

    Raises EstimatorError for propensities <= 0 or NaN among the rows used, or when no row is usable.
    Emits an EstimatorWarning for each entry of ``result.warnings`` (tiny ESS, deterministic logging,
    excluded rows).
    """
    weights = weights if weights is not None else candidate.weights
    method = make_estimator(estimator, switch_tau)
    logged = _logged_outcomes(batch, weights)
    rows = logged.rows
    if rows.shape[0] == 0:
        raise EstimatorError(f"none of the {len(batch)} logged decisions has a known outcome: nothing to evaluate")
    a = np.asarray(batch.chosen)[rows]
    p = np.asarray(batch.propensity, dtype=float)[rows]
    check_propensities(p)  # before the expensive fitting
    if n_boot < 1 or not 0.0 < confidence < 1.0:
        raise EstimatorError(f"need n_boot >= 1 and confidence in (0, 1), got {n_boot} and {confidence}")
    if bar is not None and always is not None:
        raise EstimatorError("a quality bar shapes a policy's choices; 'always one model' has none to shape")
    fold_seed, boot_seed, task_seed = np.random.SeedSequence(seed).spawn(3)
    rule = bar_rule(batch, bar, weights) if bar is not None else None
    pi, means = cross_fit(batch, candidate, weights, rows, folds=folds, seed=fold_seed, rule=rule)
    label = str(getattr(candidate, "name", type(candidate).__name__))
    if always is not None:
        pi, label = _always(batch, always, rows.shape[0]), f"always {always}"
    elif not refit:
        eligible = np.asarray(batch.probabilities)[rows] > 0
        eligible[np.arange(rows.shape[0]), a] = True
        if bar is None:
            pi = candidate.predict_batch(np.asarray(batch.features)[rows], eligible, batch.models).probabilities
        else:
            pi = bar_rule(batch, bar, weights, held_out=False)(candidate, rows, eligible)
        label = f"{label} (as trained)"
    per_task: dict[str, dict[str, Any]] = {}
    if bar is not None:
        label = f"{label} under bar {bar.describe()}"
        per_task = per_task_under_bar(method, pi, a, p, means, logged.components["quality"], logged.components["cost_usd"],
                                      np.asarray(batch.tasks)[rows], bar_values(batch, bar, rows), n_boot=n_boot,
                                      seed=task_seed, confidence=confidence)

    others = tuple(SwitchDR(DEFAULT_SWITCH_TAU) if n == "switch-dr" else cls() for n, cls in ESTIMATORS.items()
                   if n != method.name)
    reward, components, logged_reward, logged_components, gain, by_other = _estimates(
        method, pi, a, p, means, logged, weights, n_boot=n_boot, seed=boot_seed, confidence=confidence, others=others
    )
    by_estimator = {n: reward if n == method.name else by_other[n] for n in ESTIMATORS}
    diagnostics = diagnose(pi, a, p, np.asarray(batch.probabilities)[rows])
    max_weight = float(importance_weights(pi, a, p).max())
    advice = advise(by_estimator, n=int(rows.shape[0]), ess=diagnostics.ess, max_weight=max_weight,
                    deterministic=diagnostics.deterministic)
    messages = diagnostics.warnings + logged.notes
    for message in messages:
        warnings.warn(message, EstimatorWarning, stacklevel=2)
    return OPEResult(
        estimator=method.name,
        policy=label,
        weights=weights.model_dump(),
        reward=reward,
        components=components,
        logged_reward=logged_reward,
        logged_components=logged_components,
        gain=gain,
        ess=diagnostics.ess,
        n_used=int(rows.shape[0]),
        n_excluded=logged.n_excluded,
        deterministic_logging=diagnostics.deterministic,
        warnings=messages,
        n_boot=int(n_boot),
        confidence=float(confidence),
        seed=int(seed),
        folds=int(folds),
        switch_tau=method.tau if isinstance(method, SwitchDR) else None,
        by_estimator=by_estimator,
        trusted=advice.trusted,
        trust_reason=advice.reason,
        max_weight=max_weight,
        bar=bar.describe() if bar is not None else None,
        per_task=per_task,
    )


def _always(batch: LoggedBatch, model: str, n: int) -> np.ndarray:
    """Probabilities of the policy that always picks ``model`` (one-hot over batch.models)."""
    if model not in batch.models:
        raise EstimatorError(
            f"model {model!r} never appears in the log, so what it would have done cannot be estimated; "
            f"the log has: {', '.join(batch.models)}"
        )
    pi = np.zeros((n, len(batch.models)))
    pi[:, batch.models.index(model)] = 1.0
    return pi
