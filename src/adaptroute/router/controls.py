"""Operator controls on the Router's request path: per-request weights and allow-lists, tenants and
metadata, quality bars (policy.constraints) and budgets with pacing (policy.pacing).

Each decision gets a ControlNote saying what shaped it (the weights, the bar it had to meet, the
budgets' state); the note goes into the routing record and the log, so replay and tune can evaluate
other choices. Outcomes come back through concluded()/feedback(): scored quality moves the task's bar,
spend is charged to every budget that covers the request. The clock is injectable (tests drive time).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import SECRET_PARAM_NAMES, RewardWeights
from ..errors import BudgetExceededError, ConfigError, NoEligibleModelError, UnknownModelError
from ..policy import Policy, Prediction
from ..policy.constraints import BarControl, QualityBar, predict_under_bar
from ..policy.pacing import Budget, Pacer

__all__ = ["ControlNote", "OperatorControls", "check_metadata", "check_tenant", "lane_only", "overrides"]

_MAX_METADATA_KEYS = 16
_MAX_METADATA_BYTES = 2048


@dataclass(frozen=True, slots=True)
class ControlNote:
    """What shaped one decision, beyond the policy's predictions."""

    weights: RewardWeights
    tenant: str | None = None
    metadata: Mapping[str, Any] | None = None
    allowed: tuple[str, ...] | None = None  # the request's allow-list, if it had one
    bar: float | None = None  # the quality the request had to meet (None: no bar)
    effective_bar: float | None = None  # after the task's shift (see policy.constraints)
    bar_unreachable: bool = False  # no eligible model was predicted to meet it: the best one was sought
    budgets: tuple[dict[str, Any], ...] = ()  # each covering budget's state at the decision
    budget_shaped: bool = False  # a budget was ahead of its pace or its cap removed a model
    excluded_by_budget: tuple[str, ...] = field(default_factory=tuple)

    def row(self, lane: str = "online") -> tuple[object, ...]:
        """The decision's control columns (types.CONTROL_NAMES order); the tightest budget's state."""
        tight = min(self.budgets, key=lambda b: b["remaining_usd"]) if self.budgets else None
        return (
            self.bar, self.effective_bar, self.bar_unreachable if self.bar is not None else None,
            self.budget_shaped if self.budgets else None,
            tight["spent_usd"] if tight else None, tight["remaining_usd"] if tight else None, tight["allowance_usd"] if tight else None,
            self.tenant, json.dumps(dict(self.metadata), sort_keys=True) if self.metadata else None, lane,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights.model_dump(),
            "tenant": self.tenant,
            "metadata": dict(self.metadata) if self.metadata else None,
            "allowed": list(self.allowed) if self.allowed is not None else None,
            "bar": self.bar,
            "effective_bar": self.effective_bar,
            "bar_unreachable": self.bar_unreachable,
            "budgets": [dict(b) for b in self.budgets],
            "budget_shaped": self.budget_shaped,
            "excluded_by_budget": list(self.excluded_by_budget),
        }


def lane_only(lane: str) -> tuple[object, ...]:
    """The control columns of a decision no control shaped, in another lane than "online"."""
    return (None,) * 9 + (lane,)


def check_tenant(tenant: object) -> str | None:
    if tenant is None:
        return None
    if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > 200:
        raise ConfigError(f"tenant must be a non-empty string of at most 200 characters, got {tenant!r}")
    return tenant


def check_metadata(metadata: object) -> dict[str, Any] | None:
    """Small, flat, JSON-safe: at most 16 keys (strings up to 64 characters), values None, bool,
    finite numbers or strings up to 256 characters, 2 KB in all; no secret-named keys (api_key, ...)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata must be a dict, got {type(metadata).__name__}")
    if len(metadata) > _MAX_METADATA_KEYS:
        raise ConfigError(f"metadata: at most {_MAX_METADATA_KEYS} keys, got {len(metadata)}")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise ConfigError(f"metadata: keys must be non-empty strings of at most 64 characters, got {key!r}")
        if key.lower() in SECRET_PARAM_NAMES or "secret" in key.lower() or "password" in key.lower():
            raise ConfigError(f"metadata[{key!r}]: secret-named keys are not logged; pass credentials to ModelSpec")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"metadata[{key!r}]: numbers must be finite, got {value!r}")
        if isinstance(value, str) and len(value) > 256:
            raise ConfigError(f"metadata[{key!r}]: strings may hold at most 256 characters, got {len(value)}")
        if value is not None and not isinstance(value, (str, bool, int, float)):
            raise ConfigError(f"metadata[{key!r}]: values must be strings, numbers, booleans or None, got {type(value).__name__}")
        out[key] = value
    if len(json.dumps(out)) > _MAX_METADATA_BYTES:
        raise ConfigError(f"metadata: at most {_MAX_METADATA_BYTES} bytes as JSON")
    return out


def _budgets(spec: Budget | Sequence[Budget] | None) -> tuple[Budget, ...]:
    if spec is None:
        return ()
    items = (spec,) if isinstance(spec, Budget) else tuple(spec)
    for item in items:
        if not isinstance(item, Budget):
            raise ConfigError(f"budget must be a Budget or a list of them, got {type(item).__name__}")
    return items


class OperatorControls:
    """The Router's bar and budgets. ``quality_bar`` as for QualityBar.of()."""

    def __init__(
        self, quality_bar: Any = None, budget: Budget | Sequence[Budget] | None = None, *,
        clock: Callable[[], float] | None = None, capacity: int = 100_000,
    ) -> None:
        spec = QualityBar.of(quality_bar)
        self.bar = BarControl(spec) if spec is not None else None
        self.pacers = tuple(Pacer(b) for b in _budgets(budget))
        self.clock = clock or time.time
        if not callable(self.clock):
            raise ConfigError("clock must be a callable returning seconds (like time.time)")
        self._lock = threading.Lock()
        self._capacity = capacity
        # id -> task, bar, pacers, the model that answered (once known)
        self._open: OrderedDict[str, tuple[str, float | None, tuple[Pacer, ...], str | None]] = OrderedDict()

    def request(
        self, policy: Policy, x: np.ndarray, eligible: Sequence[str], task: str, overrides: Mapping[str, Any]
    ) -> tuple[Prediction, ControlNote | None]:
        """A request's prediction: the policy's own when no control applies to it (no note), else plan()'s."""
        reward = overrides.get("reward")
        if reward is not None and not isinstance(reward, RewardWeights):
            raise ConfigError(f"reward= must be a RewardWeights, got {type(reward).__name__}")
        tenant = check_tenant(overrides.get("tenant"))
        metadata = check_metadata(overrides.get("metadata"))
        allowed = overrides.get("models")
        if self.bar is None and not self.pacers and reward is None and allowed is None and tenant is None and metadata is None:
            return policy.predict(x, eligible), None  # the plain path: nothing but the policy's weights
        return self.plan(policy, x, eligible, task, weights=reward or policy.weights, allowed=allowed,
                         tenant=tenant, metadata=metadata)

    def plan(
        self, policy: Policy, x: np.ndarray, eligible: Sequence[str], task: str, *, weights: RewardWeights,
        allowed: Sequence[str] | None, tenant: str | None, metadata: dict[str, Any] | None,
    ) -> tuple[Prediction, ControlNote]:
        """The prediction a decision draws from, and the note of what shaped it."""
        names = list(eligible)
        allow: tuple[str, ...] | None = None
        if allowed is not None:
            allow = _allow_list(allowed, policy.models)
            names = [m for m in names if m in allow]
            if not names:
                raise NoEligibleModelError(f"none of the allowed models {list(allow)} can take this request now")
        now = float(self.clock())
        pacers = tuple(p for p in self.pacers if p.budget.covers(task, tenant))
        states: tuple[dict[str, Any], ...] = ()
        excluded: tuple[str, ...] = ()
        shaped = False
        if pacers:
            with self._lock:
                extra = sum(p.cost_weight(now) for p in pacers)
                remaining = min(p.remaining(now) for p in pacers)
                shaped = any(p.shaped(now) for p in pacers)
                states = tuple({"budget": p.budget.describe(), **p.state(now)} for p in pacers)
            weights = weights.model_copy(update={"cost": weights.cost + weights.quality * extra})
            expected = policy.predict(x, names, weights).means[:, 1]
            fits = expected <= remaining
            if not fits.any():
                raise BudgetExceededError(
                    f"budget exhausted for task {task!r}" + (f", tenant {tenant!r}" if tenant else "")
                    + f": ${max(remaining, 0.0):.6f} left, the cheapest eligible model is expected to cost "
                    f"${float(expected.min()):.6f} ({'; '.join(s['budget'] for s in states)})"
                )
            if not fits.all():
                excluded = tuple(m for m, ok in zip(names, fits, strict=True) if not ok)
                names = [m for m, ok in zip(names, fits, strict=True) if ok]
                shaped = True
        if self.bar is not None:
            prediction, decision = predict_under_bar(policy, x, names, weights, self.bar, task)
        else:
            prediction, decision = policy.predict(x, names, weights), None
        note = ControlNote(
            weights=weights, tenant=tenant, metadata=metadata, allowed=allow,
            bar=decision.bar if decision else None, effective_bar=decision.effective_bar if decision else None,
            bar_unreachable=decision.unreachable if decision else False,
            budgets=states, budget_shaped=shaped, excluded_by_budget=excluded,
        )
        return prediction, note

    def opened(self, decision_id: str, task: str, note: ControlNote, tenant: str | None) -> None:
        """Remember what the outcome of ``decision_id`` must be charged and scored against."""
        pacers = tuple(p for p in self.pacers if p.budget.covers(task, tenant))
        if note.bar is None and not pacers:
            return
        now = float(self.clock())
        with self._lock:
            for p in pacers:
                p.decided(now)
            self._open[decision_id] = (task, note.bar, pacers, None)
            if len(self._open) > self._capacity:
                self._open.popitem(last=False)

    def concluded(self, decision_id: str, cost_usd: float, quality: float | None, model: str | None = None) -> None:
        """A request ended (``model`` answered it): charge its spend, and learn from its quality when known."""
        with self._lock:
            entry = self._open.get(decision_id)
        if entry is None:
            return
        task, bar, pacers, _ = entry
        now = float(self.clock())
        with self._lock:
            for p in pacers:
                p.charge(cost_usd, now)
            if bar is None:
                self._open.pop(decision_id, None)
            elif decision_id in self._open:
                self._open[decision_id] = (task, bar, pacers, model)  # a later feedback() scores this model
        if quality is not None and bar is not None and self.bar is not None:
            self.bar.observe(task, quality, bar, model)
            with self._lock:
                self._open.pop(decision_id, None)  # its quality is learned: a later feedback() is a correction

    def feedback(self, decision_id: str, quality: float) -> None:
        """Late quality for a decision whose bar has not seen a score yet."""
        with self._lock:
            entry = self._open.pop(decision_id, None)
        if entry is not None and entry[1] is not None and self.bar is not None:
            self.bar.observe(entry[0], quality, entry[1], entry[3])

    def status(self) -> dict[str, Any]:
        """The bars' shifts per task and each budget's state now (for dashboards and tests)."""
        now = float(self.clock())
        with self._lock:
            budgets = [{"budget": p.budget.describe(), **p.state(now)} for p in self.pacers]
        return {"bar": self.bar.bar.describe() if self.bar else None,
                "bar_shift": self.bar.shifts() if self.bar else {},
                "bar_price_factor": self.bar.price_factors() if self.bar else {}, "budgets": budgets}


def _allow_list(allowed: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    if isinstance(allowed, str) or not isinstance(allowed, Sequence) or not allowed:
        raise ConfigError("models= must be a non-empty list of the router's model names")
    unknown = [m for m in allowed if m not in known]
    if unknown:
        raise UnknownModelError(f"models= names models the router does not have: {unknown}; known: {sorted(known)}")
    return tuple(dict.fromkeys(allowed))


def overrides(reward: Any, models: Any, tenant: Any, metadata: Any) -> dict[str, Any] | None:
    """A request's own controls as passed to complete()/submit() (None: it has none)."""
    if reward is None and models is None and tenant is None and metadata is None:
        return None
    return {"reward": reward, "models": models, "tenant": tenant, "metadata": metadata}
