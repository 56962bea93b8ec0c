"""Frozen records that cross layer boundaries: what was decided, what happened, what was logged."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import InvalidQualityError

__all__ = [
    "CONTROL_NAMES",
    "TARGETS",
    "WEIGHT_NAMES",
    "Attempt",
    "ControlColumns",
    "Decision",
    "LoggedBatch",
    "ModelScore",
    "Observations",
    "Outcome",
    "RoutingRecord",
    "check_quality",
]

# What every policy predicts per model, in this order. The reward combines them with RewardWeights at
# decision time, so changing weights never needs retraining.
TARGETS: tuple[str, ...] = ("quality", "cost_usd", "latency_s", "failure")

# The reward weights logged with each decision, in this order (RewardWeights' fields): what a decision
# was optimising, so replay and tune can default to it and compare other settings against it.
WEIGHT_NAMES: tuple[str, ...] = ("quality", "cost", "latency", "failure")

AttemptRole = Literal["primary", "retry", "fallback", "escalation", "batch"]  # batch: the batch lane (router.batch)


def check_quality(value: object, *, source: str) -> float:
    """Return ``value`` as a float in [0, 1] (bools count as 0/1) or raise InvalidQualityError."""
    if isinstance(value, bool):
        return float(value)
    try:
        q = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidQualityError(f"{source} gave quality {value!r}: expected a number in [0, 1] or a bool") from None
    if not math.isfinite(q) or not 0.0 <= q <= 1.0:
        raise InvalidQualityError(f"{source} gave quality {q!r}: expected a finite number in [0, 1]")
    return q


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one model did with one request: the raw reward components, never a baked scalar."""

    quality: float
    cost_usd: float
    latency_s: float
    failed: bool = False

    def as_targets(self) -> np.ndarray:
        return np.array([self.quality, self.cost_usd, self.latency_s, float(self.failed)])


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one model inside a routed request (primary, retry, fallback or escalation)."""

    model: str
    role: AttemptRole
    latency_s: float
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    quality: float | None = None
    error_class: str | None = None
    error_message: str | None = None  # scrubbed of secrets before it gets here
    # False for errors that are not the model's fault (context window too small): no penalty.
    counts_against_model: bool = True
    first_token_s: float | None = None
    cached_tokens: int = 0  # prompt tokens the provider billed at its cached rate
    input_cost_usd: float = 0.0  # what the prompt tokens would have cost without the cache
    cache_saved_usd: float = 0.0  # list price minus cached price, for the cached tokens
    batch_saved_usd: float = 0.0  # list price minus the batch lane's discounted price

    @property
    def ok(self) -> bool:
        return self.error_class is None


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing decision, logged before the call so (x, chosen, propensity) exists even if it fails."""

    id: str
    ts: float
    task: str
    features: np.ndarray
    eligible: tuple[str, ...]
    probabilities: tuple[float, ...]
    chosen: str
    propensity: float
    policy_name: str
    policy_version: int
    prompt_hash: str
    prompt_text: str | None = None
    weights: tuple[float, ...] | None = None  # the reward weights it was made under, in WEIGHT_NAMES order
    # what operator controls did (store.schema.CONTROL_COLUMNS): in CONTROL_NAMES order, None: nothing
    controls: tuple[object, ...] | None = None


@dataclass(frozen=True, slots=True)
class ModelScore:
    """One model's predicted components and reward for a request (router.recommend, routing record)."""

    model: str
    quality: float
    cost_usd: float
    latency_s: float
    failure: float
    reward: float
    uncertainty: float
    probability: float


@dataclass(frozen=True, slots=True)
class RoutingRecord:
    """Attached to every routed response as ``response.adaptroute``."""

    decision_id: str
    task: str
    model: str | None  # the model that produced the returned answer
    chosen: str  # the model the policy drew
    probability: float
    scores: tuple[ModelScore, ...]
    attempts: tuple[Attempt, ...]
    quality: float | None
    cost_usd: float
    latency_s: float
    escalated: bool
    policy_version: int
    returned_seq: int | None = None  # index in attempts of the answer the user got
    first_token_s: float | None = None  # streaming: seconds to the first token
    # what operator controls did (weights, tenant, metadata, bar, budgets): router.controls.ControlNote
    controls: dict[str, Any] | None = None

    @property
    def fallback_chain(self) -> tuple[str, ...]:
        return tuple(a.model for a in self.attempts)


@dataclass(frozen=True, slots=True)
class Observations:
    """Per-(context, model) outcomes a policy learns from: every attempt of a log, or every model of a
    full-information benchmark row. ``row`` indexes the context matrix of the owning batch."""

    row: np.ndarray  # int64
    model: np.ndarray  # int64 index into LoggedBatch.models
    quality: np.ndarray  # float64
    cost_usd: np.ndarray
    latency_s: np.ndarray  # NaN where unknown
    failed: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.row.shape[0])


# Decision.controls, in order (the log's decisions columns of the same names)
CONTROL_NAMES: tuple[str, ...] = (
    "bar", "bar_effective", "bar_unreachable", "budget_shaped", "budget_spent_usd", "budget_remaining_usd",
    "budget_allowance_usd",
    "tenant", "metadata", "lane",
)


@dataclass(frozen=True)
class ControlColumns:
    """Per decision of a log: what operator controls did (NaN / None where nothing applied) and saved."""

    bar: np.ndarray  # float, the bar the decision had to meet; NaN: no bar
    bar_unreachable: np.ndarray  # bool
    budget_shaped: np.ndarray  # bool
    budget_spent_usd: np.ndarray  # float, spent in the budget's period before this decision; NaN: no budget
    budget_remaining_usd: np.ndarray  # float, NaN: no budget
    budget_allowance_usd: np.ndarray  # float, what the pace allowed spent by then; NaN: no budget
    tenant: np.ndarray  # object (str or None)
    lane: np.ndarray  # object ("online", "batch")
    cached_tokens: np.ndarray  # int, over the decision's attempts
    input_cost_usd: np.ndarray  # float, uncached prompt cost over its attempts
    cache_saved_usd: np.ndarray  # float
    batch_saved_usd: np.ndarray  # float


@dataclass(frozen=True)
class LoggedBatch:
    """Decisions read back from a log (or built from a dataset), aligned arrays, one row per decision.

    ``probabilities[i, k]`` is the logged probability of ``models[k]`` (0 where not eligible), ``chosen``
    and ``executed`` index ``models`` (``executed`` is -1 where every attempt failed). Quality is the
    latest known value (feedback overrides the scorer) and NaN where never known.
    """

    decision_ids: np.ndarray
    tasks: np.ndarray
    features: np.ndarray  # (n, d) float64; shorter vectors zero-padded (features only ever append)
    models: tuple[str, ...]
    chosen: np.ndarray
    propensity: np.ndarray
    probabilities: np.ndarray
    executed: np.ndarray
    quality: np.ndarray
    cost_usd: np.ndarray
    latency_s: np.ndarray
    failed: np.ndarray
    escalated: np.ndarray
    retried: np.ndarray
    fell_back: np.ndarray
    ts: np.ndarray
    policy_versions: np.ndarray
    observations: Observations
    # (n, len(WEIGHT_NAMES)) reward weights each decision was made under; NaN where not logged (logs
    # written before schema version 2, datasets). None: not known for any row.
    weights: np.ndarray | None = None
    # what operator controls did and saved, per decision (schema version 3); None: not known for any row
    controls: ControlColumns | None = None
    # (n, 2) each request's own tokens: prompt tokens (as first counted) and the answer's tokens; NaN where
    # unknown. None: not known for any row.
    tokens: np.ndarray | None = None
    # Per model, the (input, output) price per token its logged calls imply (see store.reader).
    model_prices: dict[str, tuple[float, float]] | None = None

    def __len__(self) -> int:
        return int(self.chosen.shape[0])
