"""What a provider error means for routing: whose fault, retry or not, cool down for how long.

Configuration errors (a missing or wrong key, an unknown model name, parameters the provider refuses)
are the operator's, not the model's: they are recorded, never learned, and never cool a model down."""

from __future__ import annotations

import email.utils
import logging
import warnings
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..secrecy import scrub

__all__ = ["Failure", "all_failed_message", "classify", "scorer_failed", "warn_config_error"]

log = logging.getLogger("adaptroute.router")
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True, slots=True)
class Failure:
    error_class: str
    message: str  # scrubbed
    counts_against_model: bool  # False: not the model's fault (context window too small, configuration)
    retryable: bool  # a transient fault where trying the same model again may help
    rate_limited: bool
    context_window: bool
    retry_after_s: float | None  # from a Retry-After header
    config_error: bool = False  # the operator's to fix (key, model name, parameters)


# litellm's classes (by name along the MRO) and HTTP statuses that mean "fix your configuration".
_CONFIG_CLASSES = frozenset(
    {"AuthenticationError", "PermissionDeniedError", "NotFoundError", "BadRequestError", "UnprocessableEntityError",
     "UnsupportedParamsError", "InvalidRequestError"}
)
_CONFIG_STATUSES = frozenset({400, 401, 403, 404, 422})


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


def scorer_failed(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """What the attempts row keeps of a scorer that raised or gave an invalid quality: the answer was
    paid for and is returned with quality unknown; this says why."""
    text = scrub(f"scorer failed, quality unknown: {type(exc).__name__}: {exc}", secrets)
    key = ("<scorer>", type(exc).__name__)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"adaptroute: {text} (the response is returned; later failures are only logged, in "
                      "attempts.error_message)", RuntimeWarning, stacklevel=4)
    return text


def warn_config_error(model: str, failure: Failure) -> None:
    """Log a configuration error once per model and error class: the operator has to act on it."""
    key = (model, failure.error_class)
    if key not in _warned:
        _warned.add(key)
        log.warning("adaptroute: model %r: %s", model, failure.message)


def all_failed_message(decision_id: str, attempts: Iterable[Any], failures: dict[int, Failure]) -> str:
    """AllModelsFailedError's text; configuration errors first, since the operator must fix them."""
    attempts = list(attempts)
    config = [f"{attempts[i].model}: {f.error_class}" for i, f in sorted(failures.items()) if f.config_error and i < len(attempts)]
    text = f"every model failed for decision {decision_id}: " + "; ".join(f"{a.model}: {a.error_class}" for a in attempts)
    if config:
        text = ("configuration error (check api keys, model names and parameters; not learned as the models' "
                f"failure): {'; '.join(config)}. " + text)
    return text


def classify(exc: BaseException, secrets: Iterable[str] = (), missing_keys: tuple[str, ...] = ()) -> Failure:
    """Classify an exception raised by a litellm call (litellm's own classes, by name along the MRO,
    so this module never imports litellm)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = scrub(f"{type(exc).__name__}: {exc}", secrets)
    status = getattr(exc, "status_code", None)
    context = "ContextWindowExceededError" in names
    rate = "RateLimitError" in names or status == 429
    config = not context and not rate and (bool(names & _CONFIG_CLASSES) or status in _CONFIG_STATUSES or bool(missing_keys))
    transient = bool(
        names & {"Timeout", "APITimeoutError", "APIConnectionError", "InternalServerError", "ServiceUnavailableError",
                 "BadGatewayError", "TimeoutError", "ConnectionError", "MidStreamFallbackError"}
    ) or (isinstance(status, int) and status >= 500)
    if config:
        missing = f"no {' or '.join(missing_keys)} set or passed; " if missing_keys else ""
        message = scrub(f"configuration error (not learned as the model's failure): {missing}{type(exc).__name__}: {exc}", secrets)
    return Failure(
        error_class=type(exc).__name__,
        message=message,
        counts_against_model=not context and not config,
        retryable=transient and not rate,
        rate_limited=rate,
        context_window=context,
        retry_after_s=_retry_after(exc) if rate or transient else None,
        config_error=config,
    )
