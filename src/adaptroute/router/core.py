"""Router: pick a model per request with a contextual bandit, call it through litellm, log, learn."""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ModelSpec, RewardWeights
from ..datasets import FullInfoDataset, load_dataset
from ..errors import ConfigError, NoEligibleModelError, PolicyStateError, UnknownDecisionError
from ..features import Featurizer, HashingFeaturizer
from ..messages import PromptHasher, prompt_text, validate_messages
from ..policy import Policy, load_policy, make_policy, save_policy
from ..secrecy import SecretRegistry
from ..store import LogBackend, open_store, read_log
from ..types import Decision, ModelScore, check_quality
from .batch import BATCH_WINDOW_S, BatchHandle, BatchLane, check_submit
from .controls import ControlNote, OperatorControls, lane_only, overrides as _overrides
from .cooldown import Cooldowns
from .flow import FlowResult, RequestPlan, route
from .litellm_loader import warm_up
from .live import Snapshots
from .models import resolve_models
from .roster import Roster
from .drivers import Drivers, _Request
from .request_parts import router_settings, _check_task, _new_id, _scores, _secrets_in, _takes_model
from .streaming import AsyncRoutedStream, RoutedStream
from .learning import Learner, warm_start_batch
from .shared_tasks import SharedTasks
from .sync import ReplicaSync

if TYPE_CHECKING:
    from ..replay.report import TaskReport

__all__ = ["Router"]

log = logging.getLogger("adaptroute.router")

_CHARS_PER_TOKEN = 4  # rough, provider-independent: only used to skip models whose window is too small
_UNIFORM_BATCH = 64  # uniform numbers drawn from the router's RNG at a time (the same stream as one by one)


def _feature_key(log_key: bytes) -> bytes:
    """The featurizer's key, derived from the log's (a key of any length gives 32 bytes)."""
    return hmac.digest(log_key, b"adaptroute.features", "sha256")


class Router(Roster, Drivers):
    """Routes each request to the model a contextual bandit picks; see the README for the tour.

    ``quality_bar`` (one number, {task: bar}, or a QualityBar) routes each task to the cheapest model
    whose quality meets its bar; ``budget`` (a Budget or a list) paces spend over its period with a hard
    cap. Without ``reward``, ``quality_bar`` or ``budget``, the cost weight makes the priciest model's
    price for a typical request worth 0.1 quality points (policy.constraints.default_weights).
    ``store`` is a DuckDB path, ":memory:", a ``postgresql://`` URL (several processes sharing one log
    and learning together, see docs/scaling.md), or a LogBackend. ``policy`` is "thompson" (default),
    "linucb", "egreedy" or a Policy. ``scorer(messages, response)`` returns quality in [0, 1] (or a bool);
    without one, quality arrives later through ``feedback()``. Reliability knobs (timeout_s,
    max_fallbacks, retries, cooldown_s, escalate_below, durable, store_prompts, ...) are RouterSettings.
    """

    def __init__(
        self,
        models: Sequence[str | ModelSpec],
        reward: RewardWeights | None = None,
        policy: str | Policy = "thompson",
        store: str | LogBackend = ":memory:",
        scorer: Any = None,
        seed: int = 0,
        *,
        featurizer: Featurizer | None = None,
        hash_key: bytes | None = None,
        quality_bar: Any = None,
        budget: Any = None,
        clock: Any = None,
        **settings: Any,
    ) -> None:
        self.settings = router_settings(settings)
        self._controls = OperatorControls(quality_bar, budget, clock=clock, capacity=self.settings.pending_feedback)
        # No weights, bar or budget (and no Policy object with weights of its own): the default weights,
        # scaled to the price table (policy.constraints.default_weights), refreshed with the priors.
        self._default_reward = reward is None and quality_bar is None and budget is None and not isinstance(policy, Policy)
        if reward is not None and not isinstance(reward, RewardWeights):
            raise ConfigError(f"reward must be a RewardWeights, got {type(reward).__name__}")
        if scorer is not None and not callable(scorer):
            raise ConfigError("scorer must be callable: scorer(messages, response) -> float in [0, 1] or bool")
        warm_up()  # litellm's import and first-call loading happen here, not in the first request's latency
        self._roster_lock = threading.Lock()
        self._install(resolve_models(models))
        if isinstance(policy, Policy):
            chosen_policy = policy
            if reward is not None:
                chosen_policy.weights = reward
        elif isinstance(policy, str):
            chosen_policy = make_policy(policy, weights=reward, seed=seed)
        else:
            raise ConfigError(f"policy must be a name or a Policy, got {type(policy).__name__}")
        self.scorer = scorer
        self._scorer_takes_model = _takes_model(scorer)
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self._uniforms: list[float] = []  # drawn ahead, in reverse order (pop() takes the next one)
        self._cooldowns = Cooldowns(self.settings.cooldown_s, self.settings.cooldown_after,
                                    max_cooldown_s=self.settings.max_cooldown_s)
        # Every credential the models send, removed from every text the router stores or raises.
        self._secrets = SecretRegistry(s for m in self._models.values() for s in m.spec.secrets)
        self._owns_store = not isinstance(store, LogBackend)
        self._store = (
            store
            if isinstance(store, LogBackend)
            else open_store(
                store,
                durable=self.settings.durable,
                flush_rows=self.settings.flush_rows,
                flush_interval_s=self.settings.flush_interval_s,
                hash_key=hash_key,
                max_buffered_rows=self.settings.max_buffered_rows,
            )
        )
        # Keyed by the log's prompt-hash key (kept outside the log): stored features do not let whoever
        # holds the log check a guessed prompt (see features.py).
        self._featurizer: Featurizer = featurizer or HashingFeaturizer(key=_feature_key(self._store.hash_key))
        self._learner = Learner(chosen_policy, self._store, self.settings.pending_feedback)
        self._learner.on_conclude = lambda decision, record: self._controls.concluded(
            decision.id, record.cost_usd, record.quality, record.model)
        self._learner.on_feedback = self._controls.feedback
        self._snapshots = (Snapshots(self._store, self.settings.snapshot_dir, self.settings.snapshot_interval_s)
                           if self.settings.snapshot_dir else None)
        self._prompt_hash = PromptHasher(self._store.hash_key)
        self._batches = BatchLane(self)
        self._refresh_priors()
        self._sync: ReplicaSync | None = None  # a shared log: learn what the other replicas learn
        self._shared_tasks: SharedTasks | None = None  # a shared log: one task numbering for all replicas
        if self._store.shared and hasattr(self._featurizer, "task_index"):
            self._shared_tasks = SharedTasks(self._featurizer, self._store)
        if self._store.shared and self.settings.sync_interval_s > 0:
            self._sync = ReplicaSync(self._learner, self._store, self.settings.sync_interval_s, self._refresh_priors)
            self._sync.catch_up()
            self._sync.start()

    # -- configuration (models at run time: roster.Roster) ----------------------------------------
    @property
    def policy(self) -> Policy:
        """The policy currently deciding (replaced atomically by retrain())."""
        return self._learner.policy

    @property
    def store(self) -> LogBackend:
        return self._store

    @property
    def reward(self) -> RewardWeights:
        return self._learner.policy.weights

    @reward.setter
    def reward(self, weights: RewardWeights) -> None:
        """New weights apply from the next decision, without retraining (predictions are per component)."""
        if not isinstance(weights, RewardWeights):
            raise ConfigError(f"reward must be a RewardWeights, got {type(weights).__name__}")
        self._default_reward = False
        self._learner.set_weights(weights)

    # -- the decision -----------------------------------------------------------------------------
    def _decide(
        self, messages: Any, task: str | None, kwargs: dict[str, Any], overrides: dict[str, Any] | None = None,
        lane: str = "online",
    ) -> _Request:
        if "model" in kwargs:
            raise ConfigError("pass models to Router(models=...), or an allow-list as models=[...], not model= to a call")
        checked = validate_messages(messages)
        task = _check_task(task)
        text, _ = prompt_text(checked)
        x = self._features(checked, task)
        eligible = self._eligible(len(text) // _CHARS_PER_TOKEN)
        policy = self._learner.policy
        w = policy.weights  # read before predicting: the weights this decision is made under, logged with it
        prediction, note = self._plan(policy, x, eligible, task, overrides or {})
        if note is not None:
            w = note.weights  # the request's own, with what a budget added to the cost weight
        p_list = prediction.probabilities.tolist()  # Python floats in one call (not float() on each NumPy scalar)
        k = self._draw(p_list)
        chosen = prediction.models[k]
        scores = _scores(prediction, p_list)
        decision = Decision(
            id=_new_id(),
            ts=time.time(),
            task=task,
            features=x.astype(np.float32),
            eligible=prediction.models,
            probabilities=tuple(p_list),
            chosen=chosen,
            propensity=p_list[k],
            policy_name=policy.name,
            policy_version=policy.version,
            prompt_hash=self._prompt_hash(text),
            prompt_text=text if self.settings.store_prompts else None,
            weights=(w.quality, w.cost, w.latency, w.failure),
            controls=note.row(lane) if note is not None else (None if lane == "online" else lane_only(lane)),
        )
        self._store.add_decision(decision)  # before the call: (x, chosen, propensity) survive a failure
        if note is not None:
            self._controls.opened(decision.id, task, note, note.tenant)
        plan = RequestPlan(
            decision_id=decision.id,
            chosen=chosen,
            chosen_index=k,
            scores=scores,
            models=self._models,
            secrets=self._secrets.values.union(own) if (own := _secrets_in(kwargs)) else self._secrets.values,
            scored=self.scorer is not None and not kwargs.get("stream"),
        )
        return _Request(decision, plan, checked, kwargs, scores, policy.version, time.perf_counter(), [], controls=note)

    def _plan(self, policy: Policy, x: np.ndarray, eligible: Sequence[str], task: str, overrides: dict[str, Any]) -> tuple[Any, ControlNote | None]:
        """The policy's prediction, through the operator controls when any apply to this request."""
        return self._controls.request(policy, x, eligible, task, overrides)

    def _features(self, messages: list[dict[str, Any]], task: str) -> np.ndarray:
        if self._shared_tasks is not None:  # a new task is numbered by the shared log first
            self._shared_tasks(task)
        return self._featurizer.transform(messages, task)

    def _draw(self, p: list[float]) -> int:
        """Index i drawn with probability p[i] from one uniform number of the router's RNG: the index
        np.searchsorted(np.cumsum(p), u * sum(p), side="right") gives, without NumPy's per-call cost."""
        target = self._uniform() * sum(p)
        cumulative = 0.0
        for i, pi in enumerate(p):
            cumulative += pi
            if cumulative > target:
                return i
        return len(p) - 1  # rounding: u * sum(p) at or above the last cumulative sum

    def _uniform(self) -> float:
        """The RNG's next uniform number in [0, 1); drawn in batches, which give the same numbers as one
        call per decision for a fraction of the cost."""
        with self._rng_lock:
            if not self._uniforms:
                self._uniforms = self._rng.random(_UNIFORM_BATCH).tolist()[::-1]
            return self._uniforms.pop()

    def _eligible(self, approx_tokens: int) -> Sequence[str]:
        if approx_tokens <= self._fits_all:  # the usual case: every model's window is large enough
            fits: Sequence[str] = self._names
        else:
            fits = [m for m, p in self._models.items()
                    if p.max_input_tokens is None or p.max_input_tokens >= approx_tokens]
        if not fits:
            raise NoEligibleModelError(
                f"the prompt (~{approx_tokens} tokens) exceeds every model's context window "
                f"({ {m: p.max_input_tokens for m, p in self._models.items()} })"
            )
        ready = self._cooldowns.available(fits)
        return ready or fits  # every model cooling down: trying one beats failing outright

    # -- sync -------------------------------------------------------------------------------------
    def complete(
        self, messages: Any, task: str | None = None, *, reward: RewardWeights | None = None,
        models: Sequence[str] | None = None, tenant: str | None = None, metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Route one chat completion; returns litellm's response with ``.adaptroute`` attached
        (a RoutedStream when ``stream=True``). For this request only: ``reward`` replaces the weights,
        ``models`` is an allow-list; ``tenant`` and ``metadata`` (small, flat) are logged, and budgets
        may be per tenant. Every other keyword goes to litellm."""
        request = self._decide(messages, task, kwargs, _overrides(reward, models, tenant, metadata))
        progress = FlowResult()
        try:
            outcome = self._drive_sync(route(request.plan, self.settings, self._cooldowns, progress), request)
        except BaseException as exc:  # interrupted (or a bug): the decision still gets its outcome row
            self._abandon(request, progress, exc)
            raise
        if kwargs.get("stream"):
            return self._open_stream(request, outcome, RoutedStream)
        return self._finish(request, outcome)

    # -- the batch lane ---------------------------------------------------------------------------
    def submit(
        self, messages: Any, task: str | None = None, *, deadline_s: float = BATCH_WINDOW_S,
        reward: RewardWeights | None = None, models: Sequence[str] | None = None, tenant: str | None = None,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> BatchHandle:
        """Route a request that can wait (``deadline_s`` >= 24 h) through the provider's batch interface
        at its batch discount; returns a handle. Decided and logged now (lane "batch"); sent and
        gathered by collect() or the handle's result(). Same per-request controls as complete()."""
        check_submit(deadline_s, kwargs)
        request = self._decide(messages, task, kwargs, _overrides(reward, models, tenant, metadata), lane="batch")
        return self._batches.submit(request, deadline_s)

    def collect(self, timeout_s: float | None = None, poll_s: float = 1.0) -> list[Any]:
        """Send the batch lane's queue and wait (up to ``timeout_s``, None: until done) for the batches
        sent; returns the responses concluded (each with ``.adaptroute``; a failed request as its
        AllModelsFailedError). Their outcomes are logged and learned like any other."""
        return self._batches.collect(timeout_s=timeout_s, poll_s=poll_s)

    @property
    def batch_pending(self) -> int:
        """Requests submitted to the batch lane and not concluded yet."""
        return self._batches.pending

    # -- async ------------------------------------------------------------------------------------
    async def acomplete(
        self, messages: Any, task: str | None = None, *, reward: RewardWeights | None = None,
        models: Sequence[str] | None = None, tenant: str | None = None, metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Async complete() (same per-request controls); scorers with an ``ascore`` coroutine are
        awaited. A cancelled call still leaves its outcome row."""
        request = self._decide(messages, task, kwargs, _overrides(reward, models, tenant, metadata))
        progress = FlowResult()
        flow = route(request.plan, self.settings, self._cooldowns, progress)
        try:
            outcome = await self._drive_async(flow, request)
        except BaseException as exc:
            self._abandon(request, progress, exc)
            raise
        if kwargs.get("stream"):
            return self._open_stream(request, outcome, AsyncRoutedStream)
        return self._finish(request, outcome)

    # -- learning from later quality --------------------------------------------------------------
    def feedback(self, decision_id: str, quality: float | bool, source: str = "user") -> None:
        """Quality that arrives later (a user rating, a test result), joined to the decision by id."""
        q = check_quality(quality, source="feedback()")
        if not isinstance(decision_id, str) or not decision_id:
            raise UnknownDecisionError(f"feedback(): decision_id must be a non-empty string, got {decision_id!r}")
        if not isinstance(source, str) or len(source) > 200:
            raise ConfigError("feedback(): source must be a string of at most 200 characters")
        self._learner.feedback(decision_id, q, source)

    def cooling_down(self) -> dict[str, float]:
        """Seconds left for each model resting after a rate limit or repeated failures."""
        return self._cooldowns.cooling()

    def recommend(
        self, messages: Any, task: str | None = None, *, reward: RewardWeights | None = None,
        models: Sequence[str] | None = None,
    ) -> list[ModelScore]:
        """Every model's predicted quality, cost, latency and reward for this request (under ``reward``
        if given, among ``models`` if given), best first, with the probability the router would draw it
        (bars and budgets included). Nothing is called or logged."""
        checked = validate_messages(messages)
        task = _check_task(task)
        x = self._features(checked, task)
        prediction, _ = self._plan(self._learner.policy, x, list(self._models), task, _overrides(reward, models, None, None) or {})
        return sorted(_scores(prediction), key=lambda s: -s.reward)

    @property
    def controls(self) -> dict[str, Any]:
        """The quality bar (and each task's current shift) and every budget's state now."""
        return self._controls.status()

    def retrain(self) -> int:
        """Refit the policy from the whole log (on top of warm_start()'s data, if given) and swap it in
        atomically; returns the new version. Calls in flight finish on the policy that decided them."""
        if self._sync is not None:  # every replica's rows, and syncs continue from that snapshot
            return self._sync.refit().version
        return self._learner.retrain(read_log).version

    def sync(self) -> int:
        """Merge the other replicas' outcomes now (a shared log does so every sync_interval_s anyway);
        returns the observations merged. 0 for a log no other process writes."""
        return self._sync.sync() if self._sync is not None else 0

    def warm_start(self, data: FullInfoDataset | str | os.PathLike[str], *, allow_pickle: bool = False) -> int:
        """Learn from outcomes known before this deployment's traffic (an eval set every model answered,
        benchmark rows: a FullInfoDataset or a file load_dataset reads), matched to models by name, with
        the log learned on top; kept for later retrain() calls in this process. Returns the new version."""
        if not isinstance(data, FullInfoDataset):
            data = load_dataset(data, allow_pickle=allow_pickle)
        batch = warm_start_batch(data, self._models, self._featurizer)
        if self._sync is not None:
            return self._sync.refit(warm=batch).version
        return self._learner.retrain(read_log, warm=batch).version

    # -- persistence and lifetime -----------------------------------------------------------------
    def save_policy(self, path: str) -> None:
        save_policy(self._learner.policy, path, metadata={"featurizer": self._featurizer.to_dict()})

    def load_policy(self, path: str) -> None:
        policy, metadata = load_policy(path)
        featurizer = metadata.get("featurizer")
        if featurizer is not None and isinstance(self._featurizer, HashingFeaturizer):
            if not isinstance(featurizer, dict):
                raise PolicyStateError(f"{path}: invalid policy file: the featurizer section is not an object")
            try:
                self._featurizer = HashingFeaturizer.from_dict(featurizer, key=_feature_key(self._store.hash_key))
            except ConfigError as exc:
                raise PolicyStateError(f"{path}: invalid policy file: {exc}") from None
            if self._featurizer.key_id is None:  # type: ignore[attr-defined]
                log.warning("adaptroute: the policy %s was trained on unkeyed features: the features this "
                            "router logs from now on can be checked against a guessed prompt", path)
        self._learner.swap(policy)
        typical_in, typical_out = self._learner.typical_tokens()
        for name, model in self._models.items():  # keep the file's priors; price any model it lacks
            if name not in policy.models:
                policy.add_model(name, model.prior(typical_in, typical_out))
                policy.reopen()  # a newcomer to what the file learned

    def report(self, pass_threshold: float = 0.5) -> dict[str, TaskReport]:
        """What `adaptroute report` shows, from this router's live log: per task and "all", cost per
        completed task, latency, retry/fallback/escalation rates, savings against the premium model."""
        from ..replay.report import report

        return report(read_log(self._store), pass_threshold=pass_threshold)

    def snapshot(self) -> list[Path]:
        """Write the log's new rows to ``snapshot_dir`` now (also done every ``snapshot_interval_s``
        and at close); `adaptroute report SNAPSHOT_DIR` reads them from another process."""
        if self._snapshots is None:
            raise ConfigError("snapshot(): this router has no snapshot_dir (Router(..., snapshot_dir='snapshots/'))")
        return self._snapshots.write()

    def close(self) -> None:
        """Flush the log and close it (if the router opened it)."""
        if self._snapshots is not None:
            self._snapshots.close()
            self._snapshots = None
        if self._sync is not None:
            self._sync.close()
        if self._owns_store:
            self._store.close()
        else:
            self._store.flush()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Router(models={list(self._models)}, policy={self.policy!r}, store={self._store.path!r})"

