"""The batch lane: requests that can wait for the providers' batch discount.

``Router.submit()`` decides and logs like any request (lane "batch") and queues it; ``collect()`` sends
the queue through the provider's batch interface via litellm (one JSONL file and one batch per model:
create_file, create_batch), polls retrieve_batch until the batches complete, reads the output files
(file_content) and concludes every request: the discounted price is what is charged and logged (the
saving against list prices in attempts.batch_saved_usd), the scorer runs, and the outcome is learned
like any other, at list price (the policy predicts list prices; the lane's discount is known).
A request the provider fails is recorded against its model; the lane does not fall back online.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AdaptRouteError, AllModelsFailedError, ConfigError
from ..secrecy import scrub
from ..types import Attempt, check_quality
from .calls import litellm
from .flow import FlowResult
from .usage import priced_usage, usage_of

if TYPE_CHECKING:
    from .core import Router, _Request

__all__ = ["BATCH_WINDOW_S", "BatchError", "BatchHandle", "BatchLane", "check_submit"]

BATCH_WINDOW_S = 86_400.0  # the providers' completion window ("24h"): the shortest deadline the lane can keep
_CALL_ONLY = frozenset({"timeout", "max_retries", "api_base", "base_url", "api_key", "api_version", "model", "messages",
                        "custom_llm_provider", "stream"})


def check_submit(deadline_s: object, kwargs: dict[str, Any]) -> None:
    """What submit() refuses before deciding anything: a stream, or a deadline the lane cannot keep."""
    if kwargs.get("stream"):
        raise ConfigError("submit(): the batch lane does not stream")
    if not isinstance(deadline_s, (int, float)) or isinstance(deadline_s, bool) or not deadline_s >= BATCH_WINDOW_S:
        raise ConfigError(f"submit(): deadline_s must be >= {BATCH_WINDOW_S:.0f} (the providers' 24-hour batch "
                          f"window), got {deadline_s!r}; use complete() for anything sooner")


class BatchError(AdaptRouteError, RuntimeError):
    """A batch could not be sent, or did not finish in time (its requests stay pending)."""


@dataclass(eq=False)
class BatchHandle:
    """One submitted request. ``result()`` collects (sending the queue if need be) and returns litellm's
    response with ``.adaptroute`` attached, or raises AllModelsFailedError as complete() would."""

    decision_id: str
    task: str
    model: str
    submitted: float
    _lane: BatchLane = field(repr=False)
    _response: Any = field(default=None, repr=False)
    _error: BaseException | None = field(default=None, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout_s: float | None = None, poll_s: float = 1.0) -> Any:
        if not self.done:
            self._lane.collect(timeout_s=timeout_s, poll_s=poll_s)
        if not self.done:
            raise BatchError(f"batch request {self.decision_id} is not finished yet")
        if self._error is not None:
            raise self._error
        return self._response


@dataclass
class _Queued:
    handle: BatchHandle
    request: _Request


class BatchLane:
    def __init__(self, router: Router) -> None:
        self._router = router
        self._queued: list[_Queued] = []
        self._sent: dict[str, tuple[str, dict[str, Any], dict[str, _Queued]]] = {}  # batch id -> model, kwargs, by custom id
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queued) + sum(len(items) for _, _, items in self._sent.values())

    def submit(self, request: _Request, deadline_s: float) -> BatchHandle:
        handle = BatchHandle(request.decision.id, request.decision.task, request.decision.chosen, time.time(), self)
        with self._lock:
            self._queued.append(_Queued(handle, request))
        return handle

    # -- sending ----------------------------------------------------------------------------------
    def send(self) -> int:
        """Send every queued request, one batch per model; returns the number of batches sent."""
        with self._lock:
            queued, self._queued = self._queued, []
        by_model: dict[str, list[_Queued]] = {}
        for item in queued:
            by_model.setdefault(item.request.decision.chosen, []).append(item)
        sent = 0
        for model, items in by_model.items():
            try:
                batch_id, kwargs = self._send_one(model, items)
            except Exception as exc:  # noqa: BLE001 - the requests stay queued; the caller learns why
                with self._lock:
                    self._queued[:0] = items
                raise BatchError(f"sending the batch for {model} failed: "
                                 f"{scrub(str(exc), self._router._secrets.values)}") from None
            with self._lock:
                self._sent[batch_id] = (model, kwargs, {item.handle.decision_id: item for item in items})
            sent += 1
        return sent

    def _send_one(self, model: str, items: list[_Queued]) -> tuple[str, dict[str, Any]]:
        lm = litellm()
        params = self._router._call_defaults[model].params
        name, provider, _, _ = lm.get_llm_provider(params["model"])
        access = {k: params[k] for k in ("api_base", "api_key", "api_version") if params.get(k) is not None}
        kwargs = {"custom_llm_provider": provider, **access}
        lines = []
        for item in items:
            body = {k: v for k, v in item.request.kwargs.items() if k not in _CALL_ONLY}
            extra = {k: v for k, v in params.items() if k not in _CALL_ONLY}
            lines.append(json.dumps({"custom_id": item.handle.decision_id, "method": "POST", "url": "/v1/chat/completions",
                                     "body": {**extra, **body, "model": name, "messages": item.request.messages}}))
        upload = lm.create_file(file=("adaptroute-batch.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch", **kwargs)
        batch = lm.create_batch(completion_window="24h", endpoint="/v1/chat/completions", input_file_id=upload.id, **kwargs)
        return str(batch.id), kwargs

    # -- collecting -------------------------------------------------------------------------------
    def collect(self, timeout_s: float | None = None, poll_s: float = 1.0) -> list[Any]:
        """Send what is queued, then wait (up to ``timeout_s``; None: until done) for every sent batch;
        returns the responses of the requests concluded by this call (failed ones as exceptions)."""
        self.send()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        out: list[Any] = []
        while True:
            with self._lock:
                open_batches = list(self._sent)
            for batch_id in open_batches:
                out.extend(self._poll(batch_id))
            with self._lock:
                if not self._sent:
                    return out
            if deadline is not None and time.monotonic() >= deadline:
                return out
            time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))

    def _poll(self, batch_id: str) -> list[Any]:
        lm = litellm()
        with self._lock:
            model, kwargs, items = self._sent[batch_id]
        batch = lm.retrieve_batch(batch_id, **kwargs)
        status = str(getattr(batch, "status", ""))
        if status in ("failed", "expired", "cancelled"):
            results = {}
        elif status == "completed" and getattr(batch, "output_file_id", None):
            content = lm.file_content(batch.output_file_id, **kwargs)
            raw = content.content if hasattr(content, "content") else bytes(content)
            results = {}
            for line in raw.decode().splitlines():
                if line.strip():
                    row = json.loads(line)
                    results[str(row.get("custom_id"))] = row
        else:
            return []
        with self._lock:
            self._sent.pop(batch_id, None)
        return [self._conclude(item, results.get(decision_id), status) for decision_id, item in items.items()]

    def _conclude(self, item: _Queued, row: dict[str, Any] | None, status: str) -> Any:
        router = self._router
        request, handle = item.request, item.handle
        model = request.plan.models[handle.model]
        waited = time.time() - handle.submitted
        response = row.get("response") if row else None
        progress = FlowResult()
        if response is not None and response.get("status_code") == 200:
            reply = litellm().ModelResponse(**response["body"])
            usage = usage_of(reply)
            charged = priced_usage(model, usage, model.batch_discount)
            listed = priced_usage(model, usage)
            quality, note = None, None
            if router.scorer is not None:
                try:
                    quality = check_quality(router.score(request.messages, reply, model.name), source="scorer")
                except Exception as exc:  # noqa: BLE001 - the answer stands; the error is logged
                    note = scrub(f"scorer failed: {type(exc).__name__}: {exc}", router._secrets.values)
            progress.attempts.append(Attempt(
                model.name, "batch", waited, charged.cost_usd, usage.tokens_in, usage.tokens_out, quality,
                error_message=note, cached_tokens=usage.cached_tokens, input_cost_usd=charged.input_cost_usd,
                cache_saved_usd=charged.cache_saved_usd, batch_saved_usd=max(listed.cost_usd - charged.cost_usd, 0.0)))
            progress.responses[0] = reply
            progress.returned_seq = 0
        else:
            error = (response or {}).get("body", {}).get("error", {}) if response else (row or {}).get("error") or {}
            message = str(error.get("message") if isinstance(error, dict) else error) or f"the batch ended {status or 'without it'}"
            progress.attempts.append(Attempt(model.name, "batch", waited, 0.0, error_class="BatchRequestFailed",
                                             error_message=scrub(message, router._secrets.values)))
        request.ends.append(waited)
        record = router.record(request, progress)
        router._learner.conclude(request.decision, record)
        if record.model is None:
            handle._error = AllModelsFailedError(
                f"batch request {record.decision_id} failed on {model.name}: {record.attempts[0].error_message}",
                decision_id=record.decision_id, attempts=record.attempts)
            handle._done.set()
            return handle._error
        object.__setattr__(reply, "adaptroute", record)
        handle._response = reply
        handle._done.set()
        return reply

