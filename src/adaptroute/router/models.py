"""Turn the user's model list into validated, priced models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import ModelSpec
from ..errors import ConfigError, UnknownPriceError
from ..policy import ModelPrior
from .prices import lookup_model_info, similar_models

__all__ = ["PricedModel", "resolve_models"]


@dataclass(frozen=True, slots=True)
class PricedModel:
    spec: ModelSpec
    input_cost_per_token: float
    output_cost_per_token: float
    max_input_tokens: int | None
    cached_input_cost_per_token: float = -1.0  # the prompt cache's rate; -1: unknown, billed at the input rate
    batch_discount: float = 0.5  # the batch lane's price as a share of list (OpenAI and Anthropic: 50%)

    def __post_init__(self) -> None:
        if self.cached_input_cost_per_token < 0:
            object.__setattr__(self, "cached_input_cost_per_token", self.input_cost_per_token)

    @property
    def name(self) -> str:
        return self.spec.name

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return tokens_in * self.input_cost_per_token + tokens_out * self.output_cost_per_token

    @property
    def stated_strength(self) -> tuple[float, float, float]:
        """The order escalation follows before data tells models apart: a configured expected quality
        first (models with one rank above those without), then the price tier (price per token)."""
        expected = self.spec.expected_quality
        return (float(expected is not None), expected or 0.0, self.input_cost_per_token + self.output_cost_per_token)

    def prior(self, typical_in: float, typical_out: float) -> ModelPrior:
        """What the policy assumes before trying the model: the price table's cost of a typical
        request, and the user's expected quality and latency if configured."""
        return ModelPrior(
            quality=self.spec.expected_quality,
            cost_usd=self.cost(int(typical_in), int(typical_out)),
            latency_s=self.spec.expected_latency_s,
        )


def resolve_models(models: Sequence[str | ModelSpec]) -> dict[str, PricedModel]:
    """Validate names and find prices; a model with no known price is refused, by name."""
    if isinstance(models, (str, ModelSpec)) or not models:
        raise ConfigError("models must be a non-empty list of litellm model names or ModelSpec objects")
    specs: list[ModelSpec] = []
    for item in models:
        if isinstance(item, str):
            specs.append(ModelSpec(name=item))
        elif isinstance(item, ModelSpec):
            specs.append(item)
        else:
            raise ConfigError(f"models: expected a model name or ModelSpec, got {type(item).__name__}")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"duplicate model names: {duplicates} (give each ModelSpec a distinct name)")
    priced: dict[str, PricedModel] = {}
    for spec in specs:
        info = lookup_model_info(spec.target) or {}
        cost_in = spec.input_cost_per_token if spec.input_cost_per_token is not None else info.get("input_cost_per_token")
        cost_out = spec.output_cost_per_token if spec.output_cost_per_token is not None else info.get("output_cost_per_token")
        if cost_in is None or cost_out is None:
            raise UnknownPriceError(_unpriced(spec, cost_in is None, cost_out is None))
        window = spec.max_input_tokens or info.get("max_input_tokens")
        cached = spec.cache_read_cost_per_token if spec.cache_read_cost_per_token is not None else info.get("cache_read_input_token_cost")
        batch = spec.batch_discount if spec.batch_discount is not None else _batch_discount(info, float(cost_in))
        priced[spec.name] = PricedModel(spec, float(cost_in), float(cost_out), int(window) if window else None,
                                        float(cached) if cached is not None else -1.0, batch)
    return priced


def _batch_discount(info: dict, cost_in: float) -> float:  # type: ignore[type-arg]
    """litellm's batch price as a share of list where its table has one, else 50% (the OpenAI and
    Anthropic batch discount)."""
    batch_in = info.get("input_cost_per_token_batches")
    if batch_in is not None and cost_in > 0:
        return min(max(float(batch_in) / cost_in, 0.0), 1.0)
    return 0.5


def _unpriced(spec: ModelSpec, no_input: bool, no_output: bool) -> str:
    """Why a model has no price, and the likely fix: a typo of a known name, or the missing price."""
    if no_input != no_output:  # one price given, the other not in the table
        given, missing = ("output", "input") if no_input else ("input", "output")
        return (f"model {spec.name!r}: its ModelSpec gives {given}_cost_per_token but not {missing}_cost_per_token, "
                f"and litellm's price table has no entry for {spec.target!r}: give {missing}_cost_per_token too")
    called = repr(spec.name) if spec.target == spec.name else f"{spec.name!r} (litellm model {spec.target!r})"
    close = similar_models(spec.target)
    if close:
        others = f" (or {', '.join(map(repr, close[1:]))})" if len(close) > 1 else ""
        return (f"unknown model {called}: not in litellm's price table. Did you mean {close[0]!r}{others}? "
                f"If the name is right, give its prices: ModelSpec(name={spec.name!r}, input_cost_per_token=..., "
                "output_cost_per_token=...)")
    return (f"no price known for {called}: not in litellm's price table. Give its prices: "
            f"ModelSpec(name={spec.name!r}, input_cost_per_token=..., output_cost_per_token=...)")
