"""Token usage as litellm reports it, and what it costs: cached prompt tokens at the cached rate.

Providers bill prompt tokens served from their prompt cache at a lower rate. litellm reports them as
``usage.prompt_tokens_details.cached_tokens`` (OpenAI and most others) or ``cache_read_input_tokens``
(Anthropic); ``prompt_tokens`` includes them. The attempt keeps the count, the uncached prompt cost and
the saving, so the report can show the cache's benefit per task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import PricedModel

__all__ = ["Usage", "priced_usage", "usage_of"]


@dataclass(frozen=True, slots=True)
class Usage:
    tokens_in: int
    tokens_out: int
    cached_tokens: int = 0


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    extra = getattr(obj, "__pydantic_extra__", None)
    if isinstance(extra, dict) and name in extra:
        return extra[name]
    return getattr(obj, name, None)


def usage_of(response: Any) -> Usage:
    """The usage block of a litellm response (zeros when it has none)."""
    usage = _field(response, "usage")
    if usage is None:
        return Usage(0, 0)
    tokens_in = int(_field(usage, "prompt_tokens") or 0)
    tokens_out = int(_field(usage, "completion_tokens") or 0)
    cached = _field(_field(usage, "prompt_tokens_details"), "cached_tokens") or _field(usage, "cache_read_input_tokens") or 0
    return Usage(tokens_in, tokens_out, max(0, min(int(cached), tokens_in)))


@dataclass(frozen=True, slots=True)
class PricedUsage:
    cost_usd: float
    input_cost_usd: float  # the prompt at the full input price
    cache_saved_usd: float


def priced_usage(model: PricedModel, usage: Usage, discount: float = 1.0) -> PricedUsage:
    """What the call cost (cached tokens at the cached rate, everything times ``discount`` for the batch
    lane), the prompt's uncached cost, and the cache's saving (after the discount)."""
    cached = usage.cached_tokens
    full_in = usage.tokens_in * model.input_cost_per_token
    cost = (usage.tokens_in - cached) * model.input_cost_per_token + cached * model.cached_input_cost_per_token
    cost += usage.tokens_out * model.output_cost_per_token
    return PricedUsage(cost * discount, full_in * discount, cached * (model.input_cost_per_token - model.cached_input_cost_per_token) * discount)
