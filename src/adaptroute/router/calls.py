"""The only place that talks to litellm: one timed call per attempt, sync or async.

litellm itself is loaded (and warmed up) when a Router is built: see litellm_loader.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..secrecy import secret_values
from .flow import Call, CallResult
from .litellm_loader import litellm
from .models import PricedModel

__all__ = ["CallDefaults", "call_async", "call_defaults", "call_kwargs", "call_sync", "litellm", "missing_credentials"]



@dataclass(frozen=True, slots=True)
class CallDefaults:
    """What every call to one model starts from, built once per router rather than per call (reading a
    ModelSpec's extra parameters copies them)."""

    params: dict[str, Any]  # timeout, max_retries=0, the ModelSpec's parameters, model
    timeout_s: float  # what a timeout of None becomes


def call_defaults(model: PricedModel, timeout_s: float) -> CallDefaults:
    """Defaults < the model's ModelSpec parameters; a numeric ModelSpec timeout replaces the router's."""
    params = model.spec.call_params
    own = params.get("timeout")
    timeout = float(own) if isinstance(own, (int, float)) else timeout_s
    base = {
        "timeout": timeout,
        "max_retries": 0,  # the router retries and falls back itself, quickly and visibly
        **params,
        "model": model.spec.target,
    }
    return CallDefaults(base, timeout)


def call_kwargs(defaults: CallDefaults, messages: list[dict[str, Any]], user_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The model's defaults < what the caller passed for this request; model and messages are ours."""
    kwargs = {**defaults.params, **user_kwargs, "model": defaults.params["model"], "messages": messages}
    if kwargs["timeout"] is None:  # litellm reads None as its own default (6000 s): never on a request path
        kwargs["timeout"] = defaults.timeout_s
    return kwargs


def missing_credentials(kwargs: dict[str, Any]) -> tuple[str, ...]:
    """After a failed call that passed no credential of its own: the environment variables litellm
    wanted for this model and did not find (a configuration error, not the model's failure)."""
    if "mock_response" in kwargs or kwargs.get("mock_timeout"):  # litellm needs no key to mock a call
        return ()
    if secret_values({k: v for k, v in kwargs.items() if k not in ("messages", "model")}):
        return ()
    try:
        found = litellm().validate_environment(model=kwargs.get("model"), api_base=kwargs.get("api_base"))
    except Exception:  # noqa: BLE001 - a best-effort diagnosis must not hide the original error
        return ()
    return tuple(str(k) for k in (found or {}).get("missing_keys") or ())


def failed(exc: BaseException, start: float, kwargs: dict[str, Any]) -> CallResult:
    latency = time.perf_counter() - start
    return CallResult(error=exc, latency_s=latency, missing_keys=missing_credentials(kwargs))


def call_sync(call: Call, kwargs: dict[str, Any]) -> CallResult:
    module = litellm()  # imported before the clock starts: the import's seconds are not the model's latency
    start = time.perf_counter()
    try:
        response = module.completion(**kwargs)
    except Exception as exc:  # noqa: BLE001 - every provider failure becomes a recorded attempt
        return failed(exc, start, kwargs)
    return CallResult(response=response, latency_s=time.perf_counter() - start)


async def call_async(call: Call, kwargs: dict[str, Any]) -> CallResult:
    module = litellm()
    start = time.perf_counter()
    try:
        response = await module.acompletion(**kwargs)
    except Exception as exc:  # noqa: BLE001
        return failed(exc, start, kwargs)
    return CallResult(response=response, latency_s=time.perf_counter() - start)
