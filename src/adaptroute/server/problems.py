"""Which HTTP status and OpenAI error body an exception becomes.

400 for what the client sent (bad messages, an unknown task, a parameter the provider refused, a prompt
longer than every context window), 404 for feedback on an unknown decision, and for a request every
model failed: 429 when each failure was a rate limit (every model is cooling down), 504 when each was a
timeout, 502 otherwise. Error texts are built from error classes and scrubbed messages only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import (
    AllModelsFailedError,
    ConfigError,
    InvalidMessagesError,
    InvalidQualityError,
    NoEligibleModelError,
    UnknownDecisionError,
)

__all__ = ["Problem", "problem_for"]

_RATE_LIMITED = frozenset({"RateLimitError"})
_TIMEOUTS = frozenset({"Timeout", "APITimeoutError", "TimeoutError", "ReadTimeout", "ConnectTimeout"})
_CLIENT_FAULTS = frozenset({"BadRequestError", "ContextWindowExceededError", "UnprocessableEntityError",
                            "UnsupportedParamsError", "ContentPolicyViolationError"})


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    message: str
    kind: str
    code: str | None = None
    param: str | None = None
    decision_id: str | None = None


def problem_for(exc: BaseException) -> Problem | None:
    """The response for an error the gateway expects; None for anything else (a bug: a plain 500)."""
    if isinstance(exc, AllModelsFailedError):
        return _all_failed(exc)
    if isinstance(exc, NoEligibleModelError):
        return Problem(400, str(exc), "invalid_request_error", "context_length_exceeded", "messages")
    if isinstance(exc, InvalidMessagesError):
        return Problem(400, str(exc), "invalid_request_error", None, "messages")
    if isinstance(exc, UnknownDecisionError):
        return Problem(404, str(exc), "not_found_error", "decision_not_found", "decision_id")
    if isinstance(exc, (InvalidQualityError, ConfigError)):
        return Problem(400, str(exc), "invalid_request_error")
    return None


def _all_failed(exc: AllModelsFailedError) -> Problem:
    classes = [a.error_class for a in exc.attempts if a.error_class is not None]
    summary = "; ".join(f"{a.model}: {a.error_class}" for a in exc.attempts)
    kinds = set(classes)
    if kinds and kinds <= _RATE_LIMITED:
        return Problem(429, f"every model is rate limited and cooling down ({summary})", "rate_limit_error",
                       "rate_limit_exceeded", decision_id=exc.decision_id)
    if kinds and kinds <= _TIMEOUTS:
        return Problem(504, f"every model timed out ({summary})", "timeout", "timeout", decision_id=exc.decision_id)
    if kinds and kinds <= _CLIENT_FAULTS:
        said = next((a.error_message for a in reversed(exc.attempts) if a.error_message), summary)
        code = "context_length_exceeded" if "ContextWindowExceededError" in kinds else None
        return Problem(400, f"the provider refused the request: {said}", "invalid_request_error", code,
                       decision_id=exc.decision_id)
    return Problem(502, f"every model failed ({summary})", "api_error", "upstream_error", decision_id=exc.decision_id)
