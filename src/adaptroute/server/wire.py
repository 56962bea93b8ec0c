"""OpenAI's wire format: chat completions, stream chunks, error bodies, and the routing record.

litellm's response objects carry fields of their own (provider_specific_fields, citations, ...): they
are dropped so a client sees what OpenAI's API sends. The routing record rides along in a field
``adaptroute``, which OpenAI's SDKs keep as an extra attribute.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..types import RoutingRecord

__all__ = ["chunk_payload", "completion_payload", "dumps", "error_payload", "record_payload", "sse"]

_LITELLM_ONLY = ("provider_specific_fields", "citations", "moderation", "obfuscation")


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sse(payload: Any) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    for key in _LITELLM_ONLY:
        data.pop(key, None)
    for choice in data.get("choices") or ():
        if isinstance(choice, dict):
            for key in _LITELLM_ONLY:
                choice.pop(key, None)
            for part in ("message", "delta"):
                inner = choice.get(part)
                if isinstance(inner, dict):
                    for key in _LITELLM_ONLY:
                        inner.pop(key, None)
    return data


def record_payload(record: RoutingRecord) -> dict[str, Any]:
    """The routing record as JSON: what was drawn, who answered, every attempt (errors scrubbed)."""
    return {
        "decision_id": record.decision_id,
        "task": record.task,
        "model": record.model,
        "chosen": record.chosen,
        "probability": record.probability,
        "quality": record.quality,
        "cost_usd": _finite(record.cost_usd),
        "latency_s": _finite(record.latency_s),
        "first_token_s": _finite(record.first_token_s),
        "escalated": record.escalated,
        "policy_version": record.policy_version,
        "attempts": [
            {"model": a.model, "role": a.role, "latency_s": _finite(a.latency_s), "cost_usd": _finite(a.cost_usd),
             "tokens_in": a.tokens_in, "tokens_out": a.tokens_out, "quality": a.quality,
             "error_class": a.error_class, "error_message": a.error_message}
            for a in record.attempts
        ],
        "scores": [
            {"model": s.model, "quality": _finite(s.quality), "cost_usd": _finite(s.cost_usd),
             "latency_s": _finite(s.latency_s), "reward": _finite(s.reward), "probability": _finite(s.probability)}
            for s in record.scores
        ],
    }


def completion_payload(response: Any, record: RoutingRecord) -> dict[str, Any]:
    data = _strip(response.model_dump())
    data["model"] = record.model
    data["adaptroute"] = record_payload(record)
    return data


def chunk_payload(chunk: Any, model: str | None, include_usage: bool) -> dict[str, Any] | None:
    """One stream chunk as OpenAI sends it, or None for the usage chunk the client did not ask for
    (the router always asks the provider for usage: it prices the request)."""
    data = _strip(chunk.model_dump())
    usage = data.pop("usage", None)
    choices = data.get("choices")
    if include_usage:
        data["usage"] = usage if not choices else None
    elif not choices:
        return None
    if model is not None:
        data["model"] = model
    return data


def error_payload(message: str, kind: str, code: str | None = None, param: str | None = None,
                  decision_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    if decision_id is not None:
        body["adaptroute"] = {"decision_id": decision_id}
    return body
