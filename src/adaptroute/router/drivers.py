"""Driving one request from its decision to its outcome: the sync and async shells around the
sans-IO flow (router.flow), the scorer call, and the record the log and the learner receive.

Mixed into Router, which makes the decision (core) and owns the models (roster).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AllModelsFailedError
from ..types import Attempt, Decision, ModelScore, RoutingRecord, check_quality
from .calls import CallDefaults, call_async, call_kwargs, call_sync
from .controls import ControlNote
from .failures import all_failed_message
from .flow import Call, FlowResult, Pause, RequestPlan, Score
from .streaming import first_chunk_async, first_chunk_sync

if TYPE_CHECKING:
    from .learning import Learner

__all__ = ["Drivers"]


@dataclass(slots=True)
class _Request:
    """A request between its decision and its outcome."""

    decision: Decision
    plan: RequestPlan
    messages: list[dict[str, Any]]
    kwargs: dict[str, Any]
    scores: tuple[ModelScore, ...]
    policy_version: int
    started: float
    ends: list[float]
    pending: Any = None  # the step under way (for a request stopped half-way)
    controls: ControlNote | None = None  # what the operator controls did to the decision


def _advance(flow: Generator[Any, Any, FlowResult], reply: Any, error: BaseException | None) -> Any:
    """The flow's next step, given the last one's reply (or error); its FlowResult once it has ended."""
    try:
        return flow.throw(error) if error is not None else flow.send(reply)
    except StopIteration as stop:
        return stop.value


class Drivers:
    """Mixed into Router: runs a decided request's flow and concludes it."""

    scorer: Any
    _scorer_takes_model: bool
    _call_defaults: dict[str, CallDefaults]
    _learner: Learner

    _refresh_priors: Callable[[], None]  # roster.Roster's

    def _kwargs(self, step: Call, request: _Request) -> dict[str, Any]:
        return call_kwargs(self._call_defaults[step.model.name], request.messages, request.kwargs)

    def _drive_sync(self, flow: Generator[Any, Any, FlowResult], request: _Request) -> FlowResult:
        reply: Any = None
        error: BaseException | None = None
        while not isinstance(step := _advance(flow, reply, error), FlowResult):
            reply, error = None, None
            request.pending = step
            if isinstance(step, Call):
                kwargs = self._kwargs(step, request)
                reply = first_chunk_sync(step, kwargs) if request.kwargs.get("stream") else call_sync(step, kwargs)
                request.ends.append(time.perf_counter() - request.started)
            elif isinstance(step, Score):
                try:
                    reply = check_quality(self.score(request.messages, step.response, step.model), source="scorer")
                except Exception as exc:  # noqa: BLE001 - handed to the flow, raised after logging
                    error = exc
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
            request.pending = None
        return step

    def _abandon(self, request: _Request, progress: FlowResult, exc: BaseException) -> None:
        """Log the outcome of a request that stopped half-way (cancelled, interrupted): the call in
        flight is recorded as not the model's fault, and nothing is learned from it."""
        step = request.pending
        if isinstance(step, Call):
            request.ends.append(time.perf_counter() - request.started)
            progress.attempts.append(
                Attempt(step.model.name, step.role, request.ends[-1], error_class=type(exc).__name__,
                        error_message="the request stopped before the call returned", counts_against_model=False)
            )
        progress.returned_seq = None
        self._learner.conclude(request.decision, self.record(request, progress))

    async def _drive_async(self, flow: Generator[Any, Any, FlowResult], request: _Request) -> FlowResult:
        reply: Any = None
        error: BaseException | None = None
        while not isinstance(step := _advance(flow, reply, error), FlowResult):
            reply, error = None, None
            request.pending = step
            if isinstance(step, Call):
                kwargs = self._kwargs(step, request)
                stream = request.kwargs.get("stream")
                reply = await (first_chunk_async(step, kwargs) if stream else call_async(step, kwargs))
                request.ends.append(time.perf_counter() - request.started)
            elif isinstance(step, Score):
                try:
                    scorer = self.scorer
                    if hasattr(scorer, "ascore"):
                        raw = await scorer.ascore(request.messages, step.response)
                    else:
                        raw = self.score(request.messages, step.response, step.model)
                    reply = check_quality(raw, source="scorer")
                except Exception as exc:  # noqa: BLE001
                    error = exc
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            request.pending = None
        return step

    def score(self, messages: list[dict[str, Any]], response: Any, model: str) -> Any:
        """The scorer's raw verdict; scorers that take a ``model`` keyword learn who answered."""
        if self._scorer_takes_model:
            return self.scorer(messages, response, model=model)
        return self.scorer(messages, response)

    # -- the outcome ------------------------------------------------------------------------------
    def record(self, request: _Request, outcome: FlowResult) -> RoutingRecord:
        attempts = tuple(outcome.attempts)
        seq = outcome.returned_seq
        returned = attempts[seq] if seq is not None else None
        ends = request.ends
        return RoutingRecord(
            decision_id=request.decision.id,
            task=request.decision.task,
            model=returned.model if returned else None,
            chosen=request.decision.chosen,
            probability=request.decision.propensity,
            scores=request.scores,
            attempts=attempts,
            quality=returned.quality if returned else None,
            cost_usd=float(sum(a.cost_usd for a in attempts)),
            latency_s=float(ends[seq] if seq is not None and seq < len(ends) else (ends[-1] if ends else 0.0)),
            escalated=outcome.escalated,
            policy_version=request.policy_version,
            returned_seq=seq,
            first_token_s=returned.first_token_s if returned else None,
            controls=request.controls.to_dict() if request.controls is not None else None,
        )

    def _finish(self, request: _Request, outcome: FlowResult) -> Any:
        record = self.record(request, outcome)
        self._learner.conclude(request.decision, record)
        calls = self._learner.calls
        if calls and (calls & (calls - 1) == 0 or calls % 1024 == 0):
            self._refresh_priors()  # at 1, 2, 4, ... calls, then every 1024: priors follow real token counts
        if record.model is None:
            raise AllModelsFailedError(
                all_failed_message(record.decision_id, record.attempts, outcome.failures),
                decision_id=record.decision_id,
                attempts=record.attempts,
            )
        response = outcome.responses[record.returned_seq]  # type: ignore[index]
        object.__setattr__(response, "adaptroute", record)  # outside the pydantic fields: not in model_dump()
        return response

    def _open_stream(self, request: _Request, outcome: FlowResult, kind: type) -> Any:
        if outcome.returned_seq is None:
            return self._finish(request, outcome)  # nothing streamed: logs and raises AllModelsFailedError
        return kind(self, request, outcome)
