"""The policy contract and the machinery every policy shares.

A policy predicts quality, cost, latency and failure per model separately (ArmModels) and combines
them with the reward weights at decision time, so new weights need no retraining. Subclasses only turn
(reward mean, reward sd) per model into probabilities; the base adds the floor, so no logged propensity
is ever 0.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..config import RewardWeights
from ..errors import ConfigError, UnknownModelError
from ..types import TARGETS, LoggedBatch, Outcome
from .arms import ArmModels
from .decide import _draw, _shrink_quality, _shrink_quality_one
from .drift import DriftDetector
from .batch import one_blas_thread, predict_rows
from .batch_fit import learn_batch
from .evidence import evidence_prior_precision
from .state import DecisionState, derive_state
from .records import BatchPrediction, ModelPrior, Prediction, _prior_from_row

__all__ = ["BatchPrediction", "ModelPrior", "Policy", "Prediction"]

_T = len(TARGETS)
# Change detection starts once a model has this many (discounted) observations: before that its
# estimate is still moving by more than the shifts the detector looks for.
_DRIFT_AFTER = 30
_BOUNDED = np.array([t in ("quality", "failure") for t in TARGETS])  # targets that live in [0, 1]
class Policy(ABC):
    """Contract: probabilities(x, eligible) sums to 1 with every entry >= floor / len(eligible); choose;
    update(x, model, outcome); fit(batch); save/load (NPZ + JSON, never pickle); clone()."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[Policy]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Policy.registry[cls.name] = cls

    def __init__(
        self,
        *,
        weights: RewardWeights | None = None,
        floor: float = 0.001,
        prior_precision: float = 1.0,
        discount: float = 1.0,
        noise_prior_n: float = 2.0,
        shrinkage: bool = True,
        detect_changes: bool = True,
        bernoulli_noise: bool = True,
        seed: int = 0,
    ) -> None:
        if not 0.0 < floor < 1.0:
            raise ConfigError(f"floor must be in (0, 1): it is the probability mass spread over all models, got {floor}")
        if not prior_precision > 0:
            raise ConfigError(f"prior_precision must be > 0, got {prior_precision}")
        if not 0.5 <= discount <= 1.0:
            raise ConfigError(f"discount must be in [0.5, 1], got {discount}")
        if not noise_prior_n >= 0:
            raise ConfigError(f"noise_prior_n must be >= 0, got {noise_prior_n}")
        self.weights = weights or RewardWeights()
        self.floor = float(floor)
        self.prior_precision = float(prior_precision)
        self.discount = float(discount)
        self.noise_prior_n = float(noise_prior_n)
        self.shrinkage = bool(shrinkage)
        self.detect_changes = bool(detect_changes)
        self.bernoulli_noise = bool(bernoulli_noise)
        # Detected changes, as (model, tick the change started): observations of that model up to the
        # tick are not learned again by a refit (see fit). Kept by clone(), so a retrain keeps them.
        self.change_points: list[tuple[str, float]] = []
        # The clock tick at which exploring last reopened: a detected change began, or reopen() was
        # called for a model that arrived (see ThompsonSampling.explore_share). Kept by clone() and save().
        self.reopened_at: float | None = None
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        self.version = 0
        self._lock = threading.RLock()
        self._weight_cache: tuple[RewardWeights | None, np.ndarray, np.ndarray] = (None, np.zeros(_T), np.zeros(_T))
        self._reset_state()

    def _reset_state(self) -> None:
        self._arms = ArmModels(_T, self.prior_precision, self.discount)
        self._drift = DriftDetector(_T, _BOUNDED) if self.detect_changes else None
        self._models: dict[str, int] = {}
        self._configured = np.zeros((0, _T))  # configured prior means, NaN where unset
        self._sum = np.zeros(_T)  # pooled sums over every observation, for empirical-Bayes priors
        self._count = 0.0
        # (names, their arm indices or None when they are every model in arm order)
        self._eligible_cache: tuple[tuple[str, ...] | None, np.ndarray | None] = (None, None)
        self._derived: DecisionState | None = None  # until the next change of state

    def _changed(self) -> None:
        self._derived = None

    # -- hyperparameters --------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Constructor arguments (weights aside): what clone() and save() carry over."""
        return {
            "floor": self.floor,
            "prior_precision": self.prior_precision,
            "discount": self.discount,
            "noise_prior_n": self.noise_prior_n,
            "shrinkage": self.shrinkage,
            "detect_changes": self.detect_changes,
            "bernoulli_noise": self.bernoulli_noise,
            "seed": self.seed,
        }

    def clone(self) -> Policy:
        """Same hyperparameters, weights, models and priors; no learned state."""
        fresh = type(self)(weights=self.weights, **self.params())
        for model, index in self._models.items():
            fresh.add_model(model, _prior_from_row(self._configured[index]))
        fresh.change_points = list(self.change_points)
        fresh.reopened_at = self.reopened_at
        return fresh

    def reopen(self) -> None:
        """The field changed (a model arrived, or came back): for a while, judge every model on its own
        evidence again (ThompsonSampling's exploring share returns). Nothing before learning starts.
        Called by whoever knows of the arrival (router.add_model(), load_policy() for a model the file
        lacks, simulate()); add_model() alone does not, since models also appear as their first outcomes
        are learned."""
        with self._lock:
            if self._arms.clock > 0.0:
                self.reopened_at = self._arms.clock

    # -- models -----------------------------------------------------------------------------------
    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def add_model(self, model: str, prior: ModelPrior | None = None) -> None:
        """Register a model (idempotent); ``prior`` updates its configured prior if given."""
        with self._lock:
            if model not in self._models:
                self._models[model] = self._arms.add_arm()
                if self._drift is not None:
                    self._drift.add_arm()
                self._configured = np.vstack([self._configured, np.full(_T, np.nan)])
                self._eligible_cache = (None, None)  # "every model" now means one more
            if prior is not None:
                self._configured[self._models[model]] = prior.as_array()
            self._changed()

    def _index(self, model: str) -> int:
        try:
            return self._models[model]
        except KeyError:
            raise UnknownModelError(f"unknown model {model!r}; known: {sorted(self._models)}") from None

    def _eligible(self, eligible: Sequence[str] | None) -> tuple[tuple[str, ...], np.ndarray | None]:
        """The eligible names and their arm indices, or None for the indices when the names are every
        model in arm order (the common case: predictions need no reindexing)."""
        names = self.models if eligible is None else tuple(eligible)
        cached_names, cached_idx = self._eligible_cache
        if names == cached_names:
            return cached_names, cached_idx
        if not names:
            raise ConfigError("no eligible models")
        for name in names:
            if name not in self._models:
                self.add_model(name)
        idx: np.ndarray | None = np.array([self._models[n] for n in names], dtype=np.intp)
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate model names in eligible: {names}")
        if idx.shape[0] == self._arms.n_arms and (idx == np.arange(idx.shape[0])).all():
            idx = None
        self._eligible_cache = (names, idx)
        return names, idx

    def _weight_vectors(self, override: RewardWeights | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The weights (``override`` for one decision, else the policy's) as a vector and its square,
        rebuilt only when the weights object changes."""
        target = self.weights if override is None else override
        weights, w, w2 = self._weight_cache
        if weights is not target:
            w = target.vector()
            w2 = w * w
            self._weight_cache = (target, w, w2)
        return w, w2

    # -- priors and noise -------------------------------------------------------------------------
    def _prior_and_noise(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, T) prior means and (K, T) noise variances, cached until the next change of state."""
        state = self._decision_state()
        return state.prior, state.noise

    def _decision_state(self) -> DecisionState:
        """What every decision needs and only learning changes, computed once per change of state.

        Prior: configured where set, else the pooled mean of every observation, else defaults.
        Noise: each model's residual variance shrunk toward the pooled one by noise_prior_n pseudo-counts.
        Quality offsets: where the sharing across models centres each model's prior (see _shrink_quality).
        """
        if self._derived is None:
            self._derived = derive_state(self._sum, self._count, self._configured, self._arms, self.noise_prior_n)
        return self._derived

    # -- decisions --------------------------------------------------------------------------------
    def _fit_dim(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float).ravel()
        d = self._arms.dim
        if x.shape[0] > d:
            self._arms.grow(x.shape[0])
            self._changed()
        elif x.shape[0] < d:
            x = np.concatenate([x, np.zeros(d - x.shape[0])])
        return x

    def predict(
        self, x: np.ndarray, eligible: Sequence[str] | None = None, weights: RewardWeights | None = None
    ) -> Prediction:
        """Predicted components, reward mean and sd, and probabilities for every eligible model;
        ``weights`` replaces the policy's reward weights for this decision only (an operator control)."""
        with self._lock:
            names, idx = self._eligible(eligible)
            mean, reward, sd, probs = self._predict_one(self._fit_dim(x), idx, weights)
            return Prediction(names, mean, reward, sd, probs)

    def _predict_one(self, x: np.ndarray, idx: np.ndarray | None, weights: RewardWeights | None = None) -> tuple[np.ndarray, ...]:
        """predict()'s arrays for a context already fitted to the dimension; ``idx`` as from _eligible."""
        mean, reward, sd, low, high = self._reward_stats(x, idx, weights)
        probs = self._with_floor(self._probabilities(reward, sd, low, high))
        return mean, reward, sd, probs

    def _reward_stats(self, x: np.ndarray, idx: np.ndarray | None, weights: RewardWeights | None = None,
                      shared: bool = True) -> tuple[np.ndarray, ...]:
        """Predicted components, reward mean and sd, and reward bounds of the models at ``idx``;
        ``shared=False``: each model on its own evidence, without the sharing across models."""
        state = self._decision_state()
        mean, u2 = self._arms.predict(x, state.prior)
        noise = state.noise
        if idx is not None:
            mean, u2, noise = mean[idx], u2[idx], noise[idx]
        w, w2 = self._weight_vectors(weights)
        variance = u2[:, None] * noise  # posterior variance of each predicted component
        if self.bernoulli_noise:  # a pass rate's noise at least what its predicted level implies
            q = np.minimum(np.maximum(mean[:, 0], 0.0), 1.0)
            np.maximum(variance[:, 0], u2 * q * (1.0 - q), out=variance[:, 0])
        if self.shrinkage and shared:
            offset = state.quality_offset
            if idx is None:
                _shrink_quality_one(mean, variance, state.tried, offset)
            else:
                _shrink_quality(mean, variance, self._arms.seen[idx], None if offset is None else offset[idx])
        if self._arms.discount < 1.0:  # after sharing: a faded model keeps its own estimate, less sure
            variance = self._arms.age_variance(variance, float(x @ x), noise, idx)
        reward = mean @ w
        sd = np.sqrt(variance @ w2)
        low, high = self._reward_bounds(mean, variance, weights)
        return mean, reward, sd, low, high

    def _reward_bounds(
        self, mean: np.ndarray, variance: np.ndarray, weights: RewardWeights | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """What each model's reward can be at best and at worst, given that quality and failure live in
        [0, 1] and cost and latency are >= 0 (cost and latency at their optimistic / pessimistic 3-sd
        values). A model whose best case is below another's expected reward is out of the race: no
        posterior tail can keep exploring it (quick elimination of dominated models)."""
        w, _ = self._weight_vectors(weights)
        spread = np.sqrt(variance[..., 1:3])
        spread *= 3.0
        costs = mean[..., 1:3]
        high = np.maximum(costs - spread, 0.0) @ w[1:3]  # the (negative) cost and latency terms, at best
        high += w[0]
        low = (costs + spread) @ w[1:3]
        low += w[3]  # the (negative) failure weight
        return low, high

    def predict_batch(
        self, X: np.ndarray, eligible: np.ndarray | None = None, models: Sequence[str] | None = None, chunk: int = 8192
    ) -> BatchPrediction:
        """predict() for every row of ``X`` (n, d) at once, without learning in between.

        ``eligible`` is an optional (n, K) boolean mask over ``models`` (default: every known model);
        ineligible models get probability 0 and the floor is spread over the eligible ones.
        """
        with self._lock, one_blas_thread():
            return predict_rows(self, X, eligible, models, chunk)

    def _probabilities_batch(
        self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        """Unfloored probabilities for many rows; policies override this with a vectorised form."""
        out = np.zeros_like(reward)
        for i in range(reward.shape[0]):
            cols = np.flatnonzero(mask[i])
            out[i, cols] = self._probabilities(reward[i, cols], sd[i, cols], low[i, cols], high[i, cols])
        return out

    def probabilities(self, x: np.ndarray, eligible: Sequence[str] | None = None) -> np.ndarray:
        return self.predict(x, eligible).probabilities

    def choose(
        self, x: np.ndarray, eligible: Sequence[str] | None = None, rng: np.random.Generator | None = None,
        weights: RewardWeights | None = None,
    ) -> tuple[str, Prediction]:
        """Draw a model from the policy's probabilities (with ``rng``, or the policy's own seeded one)."""
        prediction = self.predict(x, eligible, weights)
        k = _draw(rng or self.rng, prediction.probabilities)
        return prediction.models[k], prediction

    def sample(self, x: np.ndarray, rng: np.random.Generator | None = None, weights: RewardWeights | None = None) -> int:
        """Index in ``models`` of a model drawn, over every model, with the same distribution as choose(),
        for simulation, where nothing logs the probabilities: a policy whose probabilities are costly to
        compute can draw directly (Thompson sampling does)."""
        with self._lock:
            _, idx = self._eligible(None)
            return _draw(rng or self.rng, self._predict_one(self._fit_dim(x), idx, weights)[3])

    def _with_floor(self, p: np.ndarray) -> np.ndarray:
        k = p.shape[0]
        if k == 1:
            return np.ones(1)
        p = np.maximum(p, 0.0)
        total = float(np.add.reduce(p))
        if not total > 0:
            p, total = np.ones(k), float(k)
        p *= (1.0 - self.floor) / total
        p += self.floor / k
        return p

    def explore_share(self) -> float:
        """The share of decisions drawn from each model's own evidence (see ThompsonSampling); 0 here."""
        return 0.0

    @abstractmethod
    def _probabilities(self, reward: np.ndarray, sd: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Unfloored selection probabilities from each model's reward mean, sd and bounds."""

    # -- learning ---------------------------------------------------------------------------------
    def update(self, x: np.ndarray, model: str, outcome: Outcome | np.ndarray) -> None:
        """Learn from one observed outcome of ``model`` on context ``x``."""
        y = outcome.as_targets() if isinstance(outcome, Outcome) else np.asarray(outcome, dtype=float)
        with self._lock:
            arm = self._models.get(model)
            if arm is None:
                self.add_model(model)
                arm = self._models[model]
            x = self._fit_dim(x)
            since = None if self._drift is None else self._check_drift(arm, x, y)
            self._sum += y
            self._count += 1.0
            arms = self._arms
            arms.update(arm, x, y)
            if self._drift is not None:
                self._drift.remember(arm, arms.clock, x, y)
                if since is not None:  # a change: keep only what the model did since it began
                    arms.rebuild(arm, *self._drift.recent(arm, since, arms.dim))
                    # only a model's latest change matters to a refit: one entry per model
                    self.change_points = [(m, t) for m, t in self.change_points if m != model] + [(model, since)]
                    self.reopened_at = since if self.reopened_at is None else max(self.reopened_at, since)
            self._changed()

    def _check_drift(self, arm: int, x: np.ndarray, y: np.ndarray) -> float | None:
        """Compare an observation with the model's own prediction (before learning it) and feed the
        change detector; the tick the change started at if it fires."""
        arms = self._arms
        if arms.n[arm] < _DRIFT_AFTER:
            return None
        state = self._decision_state()
        mean, u2 = arms.own_prediction(arm, x, state.prior[arm])
        scale = state.noise[arm] * (1.0 + u2)
        scale += 1e-12 + (1e-3 * mean) ** 2  # targets that never vary (latency 0) cannot alarm
        watched = self._weight_vectors()[0] != 0.0  # a target the reward ignores cannot change a decision
        return self._drift.observe(arm, arms.clock + 1.0, y, mean, np.sqrt(scale), watched)

    def revise(self, x: np.ndarray, model: str, old: Outcome, new: Outcome) -> None:
        """Replace a learned outcome (for example when feedback() corrects a scorer's quality)."""
        with self._lock:
            arm = self._index(model)
            x = self._fit_dim(x)
            delta_old, delta_new = old.as_targets(), new.as_targets()
            self._sum += delta_new - delta_old
            self._arms.shift_targets(arm, x, delta_old, delta_new)
            self._changed()

    def fit(self, batch: LoggedBatch, *, select_prior: bool = False) -> None:
        """Forget learned state, then learn every observation of ``batch`` (retrain, warm start).

        With ``select_prior``, the prior precision is first set to the value the batch's quality
        outcomes support best (maximum evidence, see policy.evidence): for a warm start from plenty of
        data. A retrain leaves it alone, so that it reproduces the online state.
        """
        with self._lock:
            configured = {m: _prior_from_row(self._configured[i]) for m, i in self._models.items()}
            if select_prior:
                self.prior_precision = evidence_prior_precision(batch, configured)
            self._reset_state()
            for model, prior in configured.items():
                self.add_model(model, prior)
            self.partial_fit(batch)

    def partial_fit(self, batch: LoggedBatch) -> None:
        """Learn every observation of ``batch`` on top of the current state, as if one by one."""
        with self._lock, one_blas_thread():
            learn_batch(self, batch)

    def rescale_cost(self, model: str, factor: float) -> None:
        """A price change: every learned and configured cost of ``model`` scales by ``factor``."""
        if not factor > 0:
            raise ConfigError(f"price factor must be > 0, got {factor}")
        with self._lock:
            arm = self._index(model)
            c = TARGETS.index("cost_usd")
            arms = self._arms
            old_sum = arms.B[arm][0, c]  # bias row sums the raw costs
            arms.B[arm][:, c] *= factor
            arms.yy[arm][c] *= factor * factor
            self._sum[c] += (factor - 1.0) * old_sum
            if not np.isnan(self._configured[arm, c]):
                self._configured[arm, c] *= factor
            arms.refresh(arm)
            self._changed()

    # -- introspection ----------------------------------------------------------------------------
    def observation_counts(self) -> dict[str, float]:
        return {m: float(self._arms.n[i]) for m, i in self._models.items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args}, models={len(self._models)}, version={self.version})"
