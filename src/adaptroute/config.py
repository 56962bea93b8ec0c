"""Validated, immutable settings: models, reward weights, router knobs.

Environment variables (ADAPTROUTE_*) are read only at the edge (the CLI), never here.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .secrecy import mask_params, secret_values

__all__ = ["ModelSpec", "RewardWeights", "RouterSettings", "describe_validation_error"]


def describe_validation_error(exc: ValidationError, known: Sequence[str] = (), noun: str = "field") -> str:
    """pydantic's errors as one line per field, without its documentation links; an unknown name is
    named with the known ones and the closest of them."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "value"
        if e["type"] == "extra_forbidden" and known:
            parts.append(unknown_name(where, known, noun))
        else:
            parts.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def unknown_name(name: str, known: Sequence[str], noun: str = "field") -> str:
    """``unknown weight 'qualty' (did you mean 'quality'?); known weights: quality, cost, ...``"""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {noun} {name!r}{hint}; known {noun}s: {', '.join(known)}"


class _Validated(BaseModel):
    """Invalid settings raise ConfigError (an AdaptRouteError and a ValueError), not pydantic's class."""

    _noun: ClassVar[str] = "field"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            known = list(type(self).model_fields)
            raise ConfigError(f"{type(self).__name__}: {describe_validation_error(exc, known, self._noun)}") from None

# ModelSpec keys that are adaptroute's own; every other keyword is passed to litellm for that model.
_OWN_FIELDS = frozenset(
    {
        "name",
        "litellm_model",
        "input_cost_per_token",
        "output_cost_per_token",
        "max_input_tokens",
        "expected_quality",
        "expected_latency_s",
        "secret_params",
        "cache_read_cost_per_token",
        "batch_discount",
    }
)
# Some parameter names whose values are secrets. Not a closed list: adaptroute.secrecy finds credentials
# by name (any *key, *token, *secret, *password ...), by SecretStr, in headers and in URLs.
SECRET_PARAM_NAMES = frozenset({"api_key", "aws_secret_access_key", "aws_session_token", "azure_ad_token", "vertex_credentials"})


class RewardWeights(_Validated):
    """reward = quality * q - cost * usd - latency * seconds - failure * failed.

    Weights are per unit: per quality point (q in [0, 1]), per US dollar, per second, per failed call.
    The log keeps the raw components, so any past decision can be re-scored under new weights.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    _noun: ClassVar[str] = "weight"

    quality: float = 1.0
    cost: float = 0.0
    latency: float = 0.0
    failure: float = 0.25

    @field_validator("quality", "cost", "latency", "failure")
    @classmethod
    def _finite_non_negative(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a finite number >= 0, got {value!r}")
        return value

    @model_validator(mode="after")
    def _not_all_zero(self) -> RewardWeights:
        if self.quality == 0 and self.cost == 0 and self.latency == 0:
            raise ValueError("quality, cost and latency weights are all zero: every model would tie")
        return self

    @classmethod
    def parse(cls, text: str) -> RewardWeights:
        """Parse ``"quality=1,cost=200,latency=0"`` (the CLI's --weights)."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = part.partition("=")
            if not sep:
                raise ConfigError(f"weights: expected name=value, got {part!r}")
            try:
                values[key.strip()] = float(raw)
            except ValueError:
                raise ConfigError(f"weights: {key.strip()}={raw!r} is not a number") from None
        try:
            return cls(**values)
        except ConfigError as exc:
            said = str(exc).removeprefix(f"{cls.__name__}: ")
            raise ConfigError(f"weights {text!r}: {said}") from None

    def vector(self) -> np.ndarray:
        """Signed weights aligned with types.TARGETS (quality, cost_usd, latency_s, failure)."""
        return np.array([self.quality, -self.cost, -self.latency, -self.failure])


class ModelSpec(_Validated):
    """One routable model: its litellm name and call parameters, prices, limits and optional priors.

    Any keyword that is not a field here (api_base, api_key, timeout, temperature, ...) is passed to
    litellm on every call to this model. Credentials never appear in repr, logs or errors: parameters
    named like one (api_key, client_secret, *_token, ...), every header value (extra_headers), URL
    user:password, values given as pydantic ``SecretStr``, and the parameters listed in ``secret_params``.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field(min_length=1, max_length=200)
    litellm_model: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    max_input_tokens: int | None = None
    expected_quality: float | None = None
    expected_latency_s: float | None = None
    secret_params: tuple[str, ...] = ()  # more parameter names whose values are credentials
    cache_read_cost_per_token: float | None = None  # cached prompt tokens (default: litellm's table)
    batch_discount: float | None = None  # batch lane price / list price (default: litellm's table, else 0.5)

    @field_validator("input_cost_per_token", "output_cost_per_token", "expected_latency_s", "cache_read_cost_per_token")
    @classmethod
    def _non_negative(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(f"must be a finite number >= 0, got {value!r}")
        return value

    @field_validator("expected_quality", "batch_discount")
    @classmethod
    def _quality_range(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or not 0 <= value <= 1):
            raise ValueError(f"must be in [0, 1], got {value!r}")
        return value

    @field_validator("max_input_tokens")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be > 0, got {value!r}")
        return value

    @property
    def target(self) -> str:
        """The model string handed to litellm."""
        return self.litellm_model or self.name

    @property
    def call_params(self) -> dict[str, Any]:
        """Extra litellm parameters for this model (api_base, api_key, timeout, ...), SecretStr unwrapped."""
        return {k: _unwrap(v) for k, v in (self.model_extra or {}).items()}

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential this model's parameters send (see adaptroute.secrecy)."""
        return tuple(secret_values(self.model_extra or {}, self.secret_params))

    @property
    def has_prices(self) -> bool:
        return self.input_cost_per_token is not None and self.output_cost_per_token is not None

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        args = list(super().__repr_args__())
        masked = mask_params({k: v for k, v in args if k is not None}, self.secret_params)
        for key, value in args:
            yield key, masked.get(key, value) if key is not None else value

    def public_dict(self) -> dict[str, Any]:
        """Everything but secrets: safe to print or store."""
        return mask_params(self.model_dump(), self.secret_params)


def _unwrap(value: Any) -> Any:
    getter = getattr(value, "get_secret_value", None)
    return getter() if callable(getter) else value


def _positive_float(name: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


class RouterSettings(_Validated):
    """Reliability and logging knobs of a Router (all have production defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    _noun: ClassVar[str] = "setting"

    timeout_s: float = 60.0  # litellm's own default is 6000 s: far too long for a request path
    max_fallbacks: int = Field(default=2, ge=0, le=20)
    retries: int = Field(default=0, ge=0, le=5)  # same-model retries on transient errors, before falling back
    retry_backoff_s: float = Field(default=0.25, ge=0)
    cooldown_s: float = Field(default=30.0, ge=0)
    cooldown_after: int = Field(default=3, ge=1)  # consecutive 5xx/timeouts before a cool-down
    max_cooldown_s: float = Field(default=300.0, ge=0)  # caps a provider's Retry-After (and cooldown_s)
    escalate_below: float | None = Field(default=None, ge=0, le=1)
    max_escalations: int = Field(default=1, ge=0, le=5)
    store_prompts: bool = False
    durable: bool = False
    flush_rows: int = Field(default=16_384, ge=1)  # rows buffered before a write (about 5,000 requests)
    flush_interval_s: float = Field(default=1.0, gt=0)
    pending_feedback: int = Field(default=100_000, ge=0)  # decisions kept in memory for feedback()
    # A postgresql:// store: merge the other replicas' outcomes this often (0: never), and keep at most
    # this many rows in memory while the database is unreachable (past it rows are counted in
    # store.overflow, not logged).
    sync_interval_s: float = Field(default=2.0, ge=0)
    max_buffered_rows: int = Field(default=1_000_000, ge=1)
    snapshot_dir: str | None = None  # Parquet snapshots of the log for `adaptroute report DIR` while running
    snapshot_interval_s: float = Field(default=60.0, gt=0)

    @field_validator("timeout_s")
    @classmethod
    def _timeout(cls, value: float) -> float:
        return _positive_float("timeout_s", value)
