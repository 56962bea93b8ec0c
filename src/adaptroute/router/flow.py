"""One routed request as a sans-IO generator: it yields what it needs (a model call, a score, a pause)
and receives the results, so the sync and async drivers in router.drivers share every routing rule.

Rules: retry the same model only on transient errors (bounded); otherwise fall back to the next model
by the policy's ranking (bounded); a context-window error moves to a model with a larger window and is
not held against the model; a response scored below ``escalate_below`` is re-asked to the model with
the highest predicted quality not tried yet, ties (before any data) broken by configured expected quality,
else price (bounded). Every attempt is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ..config import RouterSettings
from ..types import Attempt, AttemptRole, ModelScore
from .cooldown import Cooldowns
from .failures import Failure, classify, scorer_failed, warn_config_error
from .models import PricedModel
from .usage import priced_usage, usage_of

__all__ = ["Call", "CallResult", "Pause", "RequestPlan", "Score", "route"]


@dataclass(frozen=True, slots=True)
class Call:
    model: PricedModel
    role: AttemptRole


@dataclass(slots=True)
class CallResult:
    response: Any = None
    error: BaseException | None = None
    latency_s: float = 0.0
    first_token_s: float | None = None
    missing_keys: tuple[str, ...] = ()  # credentials litellm wanted and found nowhere (a failed call only)


@dataclass(frozen=True, slots=True)
class Score:
    model: str
    response: Any


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(slots=True)
class RequestPlan:
    """What the decision fixed before any call: the drawn model and the policy's predictions, from
    which the fallback order and the escalation candidates follow."""

    decision_id: str
    chosen: str
    chosen_index: int  # in scores
    scores: tuple[ModelScore, ...]  # every eligible model, in the policy's order
    models: dict[str, PricedModel]
    secrets: frozenset[str]  # the credentials this request sends (the router's and the call's own)
    scored: bool  # a scorer is configured (sync calls score inline; streams are scored at the end)
    _ranking: list[str] | None = None
    _quality: dict[str, float] | None = None

    # Both built on first use: most requests succeed on the drawn model and never need them.
    @property
    def ranking(self) -> list[str]:
        """Every eligible model: the drawn one, then the others by predicted reward, best first."""
        if self._ranking is None:
            self._ranking = _ranking(self.scores, self.chosen_index)
        return self._ranking

    @property
    def predicted_quality(self) -> dict[str, float]:
        if self._quality is None:
            self._quality = {s.model: s.quality for s in self.scores}
        return self._quality


@dataclass(slots=True)
class FlowResult:
    attempts: list[Attempt] = field(default_factory=list)
    responses: dict[int, Any] = field(default_factory=dict)  # attempt index -> response
    returned_seq: int | None = None
    escalated: bool = False
    failures: dict[int, Failure] = field(default_factory=dict)


def route(
    plan: RequestPlan, settings: RouterSettings, cooldowns: Cooldowns, out: FlowResult | None = None
) -> Generator[Call | Score | Pause, Any, FlowResult]:
    """Drive with send(); ``out`` (optional) lets the driver see the attempts if it must stop early."""
    out = out if out is not None else FlowResult()
    tried: set[str] = set()
    model = plan.models[plan.chosen]
    role: AttemptRole = "primary"
    retries_left = settings.retries
    fallbacks_left = settings.max_fallbacks
    escalations_left = settings.max_escalations
    while True:
        tried.add(model.name)
        result: CallResult = yield Call(model, role)
        if result.error is None:
            usage = usage_of(result.response)
            priced = priced_usage(model, usage)
            quality: float | None = None
            note: str | None = None
            if plan.scored:
                try:
                    quality = yield Score(model.name, result.response)
                except Exception as exc:  # noqa: BLE001 - a paid answer is kept; the scorer's error is logged
                    note = scorer_failed(exc, plan.secrets)
            out.attempts.append(
                Attempt(model.name, role, result.latency_s, priced.cost_usd, usage.tokens_in, usage.tokens_out,
                        quality, error_message=note, first_token_s=result.first_token_s, cached_tokens=usage.cached_tokens,
                        input_cost_usd=priced.input_cost_usd, cache_saved_usd=priced.cache_saved_usd)
            )
            out.responses[len(out.attempts) - 1] = result.response
            cooldowns.success(model.name)
            threshold = settings.escalate_below
            if quality is not None and threshold is not None and quality < threshold and escalations_left > 0:
                stronger = _strongest_untried(plan, tried, model.name)
                if stronger is not None:
                    escalations_left -= 1
                    out.escalated = True
                    model, role = plan.models[stronger], "escalation"
                    continue
            break
        failure = classify(result.error, plan.secrets, missing_keys=result.missing_keys)
        if failure.config_error:
            warn_config_error(model.name, failure)
        out.failures[len(out.attempts)] = failure
        out.attempts.append(
            Attempt(model.name, role, result.latency_s, 0.0, error_class=failure.error_class,
                    error_message=failure.message, counts_against_model=failure.counts_against_model,
                    first_token_s=result.first_token_s)
        )
        cooldowns.failure(model.name, failure)
        if failure.retryable and retries_left > 0 and cooldowns.available([model.name]):  # never retry a resting model
            retries_left -= 1
            yield Pause(settings.retry_backoff_s * (2 ** (settings.retries - retries_left - 1)))
            role = "retry"
            continue
        if fallbacks_left <= 0:
            break
        following = _next_fallback(plan, tried, model, failure)
        if following is None:
            break
        fallbacks_left -= 1
        model, role = plan.models[following], "fallback"
        retries_left = settings.retries
    out.returned_seq = _best_answer(out)
    return out


def _ranking(scores: tuple[ModelScore, ...], chosen: int) -> list[str]:
    """The drawn model, then the others by predicted reward, best first (ties keep the policy's order,
    NaN last: the order of a stable argsort of -reward)."""
    reward = [-math.inf if math.isnan(s.reward) else s.reward for s in scores]
    order = sorted(range(len(scores)), key=reward.__getitem__, reverse=True)  # reverse=True stays stable
    return [scores[chosen].model] + [scores[i].model for i in order if i != chosen]


def _strongest_untried(plan: RequestPlan, tried: set[str], current: str) -> str | None:
    """The untried model stronger than ``current``: by predicted quality, and where predictions tie (a
    fresh router predicts the same for every model) by the stated order: configured expected quality,
    else price tier (PricedModel.stated_strength)."""
    quality = plan.predicted_quality

    def strength(name: str) -> tuple[float, tuple[float, float, float]]:
        return round(quality.get(name, -math.inf), 6), plan.models[name].stated_strength

    above = strength(current)
    candidates = [m for m in plan.ranking if m not in tried and strength(m) > above]
    return max(candidates, key=strength) if candidates else None


def _next_fallback(plan: RequestPlan, tried: set[str], failed: PricedModel, failure: Failure) -> str | None:
    for name in plan.ranking:
        if name in tried:
            continue
        if failure.context_window:
            window, needed = plan.models[name].max_input_tokens, failed.max_input_tokens
            if window is not None and needed is not None and window <= needed:
                continue  # no larger context window: it would fail the same way
        return name
    return None


def _best_answer(out: FlowResult) -> int | None:
    """The answer the user gets: the best-scored success (the latest one on ties or without scores)."""
    best: int | None = None
    for i, attempt in enumerate(out.attempts):
        if not attempt.ok:
            continue
        if best is None or (attempt.quality or 0.0) >= (out.attempts[best].quality or 0.0):
            best = i
    return best
