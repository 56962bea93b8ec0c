"""What a provider error means for routing: whose fault, retry or not, cool down for how long."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..secrecy import scrub

__all__ = ["Failure", "classify"]


@dataclass(frozen=True, slots=True)
class Failure:
    error_class: str
    message: str  # scrubbed
    counts_against_model: bool  # False: not the model's fault (its context window is just too small)
    retryable: bool  # a transient fault where trying the same model again may help
    rate_limited: bool
    context_window: bool
    retry_after_s: float | None  # from a Retry-After header


def _retry_after(exc: BaseException) -> float | None:
    headers: Any = None
    response = getattr(exc, "response", None)
    if response is not None:
        headers = getattr(response, "headers", None)
    headers = headers or getattr(exc, "litellm_response_headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:  # an HTTP date; anything unparsable is ignored (a bad header must not break the request)
            parsed = email.utils.parsedate_to_datetime(str(value)) if value else None
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def classify(exc: BaseException, secrets: Iterable[str] = ()) -> Failure:
    """Classify an exception raised by a litellm call (litellm's own classes, by name along the MRO,
    so this module never imports litellm)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = scrub(f"{type(exc).__name__}: {exc}", secrets)
    status = getattr(exc, "status_code", None)
    context = "ContextWindowExceededError" in names
    rate = "RateLimitError" in names or status == 429
    transient = bool(
        names & {"Timeout", "APITimeoutError", "APIConnectionError", "InternalServerError", "ServiceUnavailableError",
                 "BadGatewayError", "TimeoutError", "ConnectionError", "MidStreamFallbackError"}
    ) or (isinstance(status, int) and status >= 500)
    return Failure(
        error_class=type(exc).__name__,
        message=message,
        counts_against_model=not context,
        retryable=transient and not rate,
        rate_limited=rate,
        context_window=context,
        retry_after_s=_retry_after(exc) if rate or transient else None,
    )
