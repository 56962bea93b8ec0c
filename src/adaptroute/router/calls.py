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
    return {
        "timeout": timeout_s,
        "max_retries": 0,  # the router retries and falls back itself, quickly and visibly
        **call.model.spec.call_params,
        **user_kwargs,
        "model": call.model.spec.target,
        "messages": messages,
    }


def call_sync(call: Call, kwargs: dict[str, Any]) -> CallResult:
    start = time.perf_counter()
    try:
        response = litellm().completion(**kwargs)
    except Exception as exc:  # noqa: BLE001 - every provider failure becomes a recorded attempt
        return CallResult(error=exc, latency_s=time.perf_counter() - start)
    return CallResult(response=response, latency_s=time.perf_counter() - start)


async def call_async(call: Call, kwargs: dict[str, Any]) -> CallResult:
    start = time.perf_counter()
    try:
        response = await litellm().acompletion(**kwargs)
    except Exception as exc:  # noqa: BLE001
        return CallResult(error=exc, latency_s=time.perf_counter() - start)
    return CallResult(response=response, latency_s=time.perf_counter() - start)
