"""Small per-request pieces of Router: its settings, decision ids, task and scorer checks, the scores a record
carries, and the secrets a call's own parameters bring."""

from __future__ import annotations

import inspect
import os
from typing import Any

from ..config import RouterSettings
from ..errors import ConfigError
from ..policy import Prediction
from ..secrecy import secret_values
from ..types import ModelScore

__all__: list[str] = []  # internal to adaptroute.router

DEFAULT_TASK = "default"


def _scores(prediction: Prediction, probs: list[float] | None = None) -> tuple[ModelScore, ...]:
    """Every eligible model's predicted components, reward, sd and probability, as Python floats."""
    means, reward, sd = prediction.means.tolist(), prediction.reward.tolist(), prediction.sd.tolist()
    probs = prediction.probabilities.tolist() if probs is None else probs
    rows = zip(prediction.models, means, reward, sd, probs)
    return tuple([ModelScore(m, *mean, r, s, p) for m, mean, r, s, p in rows])


def _new_id() -> str:
    """A random version-4 UUID as 32 hex digits: uuid.uuid4().hex without building a UUID object."""
    n = int.from_bytes(os.urandom(16), "big")
    n = (n & ~(0xF000 << 64)) | (4 << 76)  # version 4
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    return f"{n:032x}"


def _check_task(task: object) -> str:
    if task is None:
        return DEFAULT_TASK
    if not isinstance(task, str) or not task.strip() or len(task) > 200:
        raise ConfigError(f"task must be a non-empty string of at most 200 characters, got {task!r}")
    return task


def _takes_model(scorer: Any) -> bool:
    if scorer is None:
        return False
    try:
        parameters = inspect.signature(scorer).parameters
    except (TypeError, ValueError):
        return False
    return "model" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _secrets_in(kwargs: dict[str, Any]) -> tuple[str, ...]:
    """The credentials a call's own parameters send (api_key=, extra_headers=, an api_base with a
    password, ...), found as for a ModelSpec's (adaptroute.secrecy.secret_values)."""
    return tuple(secret_values(kwargs)) if kwargs else ()


def router_settings(settings: dict[str, Any]) -> RouterSettings:
    """Router's keyword settings, validated; a mistake is said in Router's terms (not RouterSettings')."""
    try:
        return RouterSettings(**settings)
    except ConfigError as exc:
        said = str(exc).replace("RouterSettings: ", "Router(): ", 1)
        if "unknown setting" in said:
            said += (". Router also takes models, reward, policy, store, scorer, seed, featurizer, hash_key, quality_bar, budget, clock; "
                     "litellm parameters (temperature, api_base, ...) go to complete() or a ModelSpec")
        raise ConfigError(said) from None
