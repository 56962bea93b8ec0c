"""The only place that talks to litellm: one timed call per attempt, sync or async.

litellm is imported on the first call (its import takes seconds), with its price table read from the
package rather than downloaded.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .flow import Call, CallResult

__all__ = ["call_async", "call_sync", "litellm"]

_module: Any = None


def litellm() -> Any:
    global _module
    if _module is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm as module

        module.suppress_debug_info = True  # no "Give Feedback" banners on every provider error
        _module = module
    return _module


def call_kwargs(call: Call, messages: list[dict[str, Any]], user_kwargs: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Defaults < the model's ModelSpec parameters < what the caller passed for this request."""
    kwargs = {
        "timeout": timeout_s,
        "max_retries": 0,  # the router retries and falls back itself, quickly and visibly
        **call.model.spec.call_params,
        **user_kwargs,
        "model": call.model.spec.target,
        "messages": messages,
    }
    if kwargs["timeout"] is None:  # litellm reads None as its own default (6000 s): never on a request path
        kwargs["timeout"] = timeout_s
    return kwargs


def call_sync(call: Call, kwargs: dict[str, Any]) -> CallResult:
    module = litellm()  # imported before the clock starts: the import's seconds are not the model's latency
    start = time.perf_counter()
    try:
        response = module.completion(**kwargs)
    except Exception as exc:  # noqa: BLE001 - every provider failure becomes a recorded attempt
        return CallResult(error=exc, latency_s=time.perf_counter() - start)
    return CallResult(response=response, latency_s=time.perf_counter() - start)


async def call_async(call: Call, kwargs: dict[str, Any]) -> CallResult:
    module = litellm()
    start = time.perf_counter()
    try:
        response = await module.acompletion(**kwargs)
    except Exception as exc:  # noqa: BLE001
        return CallResult(error=exc, latency_s=time.perf_counter() - start)
    return CallResult(response=response, latency_s=time.perf_counter() - start)
