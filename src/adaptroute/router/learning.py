"""The router's learning side: log each outcome, update the policy, join late feedback, retrain.

One lock orders "log the outcome" and "learn from it", so a retrain can take an exact snapshot of the
log and replay onto the new policy whatever was learned while it was fitting: nothing is counted twice
or lost, and the swap is a single reference assignment (calls in flight keep the policy they read).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import RewardWeights
from ..datasets import FullInfoDataset
from ..errors import DatasetError, UnknownDecisionError
from ..features import Featurizer
from ..policy import Policy
from ..store import LogBackend
from ..types import Attempt, Decision, LoggedBatch, Outcome, RoutingRecord

if TYPE_CHECKING:
    from .models import PricedModel

__all__ = ["Learner", "warm_start_batch"]


@dataclass(slots=True)
class _Pending:
    """What feedback() needs to learn from a recent decision without reading the log."""

    features: np.ndarray  # as logged (float32): converted only if feedback arrives
    model: str | None  # the model whose answer the user got
    cost_usd: float
    latency_s: float
    learned_quality: float | None  # the quality the policy has already learned for it, if any


class Learner:
    def __init__(self, policy: Policy, store: LogBackend, capacity: int) -> None:
        self._policy = policy
        self._store = store
        self._capacity = capacity
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._lock = threading.Lock()
        self._replay: list[tuple[Any, ...]] | None = None  # updates made while a retrain is fitting
        self._warm: LoggedBatch | None = None  # outcomes known before this deployment's traffic
        # price changes made at run time, as (model, new / old, time): a refit learns the costs the log
        # holds from before each change at the price after it (see _reprice)
        self._price_changes: list[tuple[str, float, float]] = []
        # successful calls, tokens in, tokens out: for price-based cost priors (Python numbers: a NumPy
        # array costs more per call than the additions themselves)
        self._calls, self._tokens_in, self._tokens_out = 0, 0.0, 0.0
        # operator controls (router.controls) hear of every concluded request and every late quality
        self.on_conclude: Callable[[Decision, RoutingRecord], None] | None = None
        self.on_feedback: Callable[[str, float], None] | None = None

    @property
    def policy(self) -> Policy:
        return self._policy

    def set_weights(self, weights: RewardWeights) -> None:
        with self._lock:
            self._policy.weights = weights

    def rescale_cost(self, model: str, factor: float) -> None:
        """A price change: what the policy learned of ``model``'s cost scales by ``factor`` now, and
        every later refit applies it to the log's earlier calls of that model."""
        with self._lock:
            self._policy.rescale_cost(model, factor)
            self._price_changes.append((model, float(factor), time.time()))

    def typical_tokens(self) -> tuple[float, float]:
        calls = self._calls
        return (self._tokens_in / calls, self._tokens_out / calls) if calls else (1000.0, 250.0)

    @property
    def calls(self) -> int:
        """Successful calls seen so far (the base of the typical token counts)."""
        return self._calls

    # -- online -----------------------------------------------------------------------------------
    def _learn(self, x: np.ndarray, model: str, outcome: Outcome, old: Outcome | None = None) -> None:
        if old is None:
            self._policy.update(x, model, outcome)
        else:
            self._policy.revise(x, model, old, outcome)
        if self._replay is not None:
            self._replay.append((x, model, outcome, old))

    def conclude(self, decision: Decision, record: RoutingRecord) -> None:
        """Log a finished request and learn from every attempt whose quality (or failure) is known."""
        x: np.ndarray | None = None  # the logged features as float64, built only if something is learned
        with self._store.deferred_commit(), self._lock:  # durable: committed after the lock is released
            self._store.add_result(record)
            for attempt in record.attempts:
                if attempt.ok:
                    self._calls += 1
                    self._tokens_in += attempt.tokens_in
                    self._tokens_out += attempt.tokens_out
                    if attempt.quality is None:
                        continue  # quality arrives later, through feedback()
                    outcome = _learned(attempt, record)
                elif attempt.counts_against_model:
                    outcome = _failed(attempt, record)
                else:
                    continue
                x = decision.features.astype(float) if x is None else x
                self._learn(x, attempt.model, outcome)
            returned = record.attempts[record.returned_seq] if record.returned_seq is not None else None
            if self._capacity:
                self._pending[decision.id] = _Pending(
                    decision.features,
                    returned.model if returned else None,
                    returned.cost_usd + returned.batch_saved_usd if returned else 0.0,  # list price (see _learned)
                    returned.latency_s if returned else 0.0,
                    returned.quality if returned else None,
                )
                if len(self._pending) > self._capacity:
                    self._pending.popitem(last=False)
        if self.on_conclude is not None:
            self.on_conclude(decision, record)

    def feedback(self, decision_id: str, quality: float, source: str) -> None:
        """Log late quality; learn from it now if the decision is recent, else at the next retrain."""
        with self._lock:
            pending = self._pending.get(decision_id)
        if pending is None and not self._store.has_decision(decision_id):
            raise UnknownDecisionError(f"feedback(): no decision {decision_id!r} in the log {self._store.path}")
        if self.on_feedback is not None:
            self.on_feedback(decision_id, quality)
        with self._store.deferred_commit(), self._lock:
            self._store.add_feedback(decision_id, quality, source)
            if pending is None or pending.model is None:
                return
            x = pending.features.astype(float)
            new = Outcome(quality, pending.cost_usd, pending.latency_s)
            if pending.learned_quality is None:
                self._learn(x, pending.model, new)
            else:
                old = Outcome(pending.learned_quality, pending.cost_usd, pending.latency_s)
                self._learn(x, pending.model, new, old=old)
            pending.learned_quality = quality

    def merge(self, updates: Iterable[tuple[np.ndarray, str, Outcome, Outcome | None, str | None]], calls: int,
              tokens_in: float, tokens_out: float) -> int:
        """Learn outcomes another replica logged, in the order given, and its successful calls' token
        counts. A feedback carries ``old`` (the quality learned before, which it replaces) and its
        decision id: if that decision is one of this replica's recent ones, a later local feedback
        revises from the quality learned now."""
        n = 0
        with self._lock:
            for x, model, outcome, old, feedback_on in updates:
                self._learn(x, model, outcome, old)
                pending = self._pending.get(feedback_on) if feedback_on is not None else None
                if pending is not None:
                    pending.learned_quality = outcome.quality
                n += 1
            self._calls += calls
            self._tokens_in += tokens_in
            self._tokens_out += tokens_out
        return n

    # -- retraining -------------------------------------------------------------------------------
    def retrain(self, read: Callable[[LogBackend], LoggedBatch], warm: LoggedBatch | None = None) -> Policy:
        """Refit on the warm-start data (``warm``, kept from then on; else the one kept before) and then
        the whole log."""
        with self._lock:
            snapshot = self._store.snapshot()  # flushed, and no further flush until released
            snapshot.__enter__()
            self._replay = []
            base = self._policy
            warm = self._warm if warm is None else warm
        try:
            try:
                batch = _reprice(read(self._store), self._price_changes)
            finally:
                snapshot.__exit__(None, None, None)
            fresh = base.clone()
            if warm is None:
                fresh.fit(batch)
            else:  # the prior precision that the warm-start data supports best, then the log on top
                fresh.fit(warm, select_prior=True)
                fresh.partial_fit(batch)
        except BaseException:
            with self._lock:
                self._replay = None
            raise
        with self._lock:
            for x, model, outcome, old in self._replay or ():
                if old is None:
                    fresh.update(x, model, outcome)
                else:
                    fresh.revise(x, model, old, outcome)
            self._replay = None
            fresh.weights = self._policy.weights
            fresh.version = base.version + 1
            self._policy = fresh
            self._warm = warm
        return fresh

    def swap(self, policy: Policy) -> None:
        with self._lock:
            self._policy = policy
            self._pending.clear()  # their learned state belongs to the old policy


def _reprice(batch: LoggedBatch, changes: list[tuple[str, float, float]]) -> LoggedBatch:
    """``batch`` with each observed cost of a repriced model, decided before the change, times the
    change's factor (the calls it logged were billed at the old price)."""
    if not changes or not len(batch.observations):
        return batch
    obs = batch.observations
    cost = obs.cost_usd.copy()
    decided = np.asarray(batch.ts, dtype=float)[obs.row]
    for model, factor, at in changes:
        if model in batch.models:
            cost[(obs.model == batch.models.index(model)) & (decided < at)] *= factor
    return replace(batch, observations=replace(obs, cost_usd=cost))


def _learned(attempt: Attempt, record: RoutingRecord) -> Outcome:
    """A scored attempt as the policy learns it. The batch lane's attempts at list price (the policy
    predicts list prices; the lane's discount is known) and at the latency the policy expected (their
    hours in a batch queue say nothing about the model's speed online)."""
    if attempt.role != "batch":
        return Outcome(attempt.quality, attempt.cost_usd, attempt.latency_s)  # type: ignore[arg-type]
    expected = next((s.latency_s for s in record.scores if s.model == attempt.model), 0.0)
    return Outcome(attempt.quality, attempt.cost_usd + attempt.batch_saved_usd, expected)  # type: ignore[arg-type]


def _failed(attempt: Attempt, record: RoutingRecord) -> Outcome:
    """A failed call usually costs nothing, but learning cost 0 would make a failing model look cheap
    and offset its failure penalty: a failure is learned at the cost the model was expected to have."""
    expected = next((s.cost_usd for s in record.scores if s.model == attempt.model), 0.0)
    return Outcome(0.0, max(attempt.cost_usd, expected), attempt.latency_s, failed=True)


def warm_start_batch(data: FullInfoDataset, models: Mapping[str, PricedModel], featurizer: Featurizer) -> LoggedBatch:
    """The router's models' outcomes in ``data`` (matched by name) as observations over the router's
    features. Without latencies in the data, each model's expected_latency_s stands in, else 0."""
    known = tuple(name for name in models if name in data.models)
    if not known:
        raise DatasetError(f"{data.source}: none of the router's models {sorted(models)} is in it (it has {list(data.models)})")
    data = data.select_models(known)
    if data.latency_s is None:
        expected = np.array([models[name].spec.expected_latency_s or 0.0 for name in known])
        data = replace(data, latency_s=np.tile(expected, (len(data), 1)))
    return data.as_batch(data.features(featurizer))
