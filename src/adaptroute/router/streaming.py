"""Streaming through the router (stream=True).

The router reads the first chunk before handing the stream over: a stream that breaks before its first
token falls back to the next model like any failed call. After that the user holds the stream; when it
ends (or breaks, or is closed early) the attempt is completed with total latency, tokens, cost and,
with a scorer, quality of the assembled answer, then logged and learned like any other request.

The router asks the provider for token usage (``stream_options={"include_usage": True}``) to price the
call; unless the caller asked for it too, the usage-only chunk it adds (``choices=[]``) is kept for the
accounting and not handed over, so the caller sees the chunks litellm gives for the request they made.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..secrecy import scrub_exception
from ..types import check_quality
from .calls import failed, litellm
from .failures import classify, scorer_failed
from .flow import Call, CallResult, FlowResult
from .usage import priced_usage, usage_of

if TYPE_CHECKING:
    from .core import Router
    from .drivers import _Request

__all__ = ["AsyncRoutedStream", "RoutedStream", "first_chunk_async", "first_chunk_sync"]


@dataclass(slots=True)
class _Peeked:
    first: list[Any]  # the chunks read before the stream was handed over, the first answer chunk last
    rest: Any
    started: float


class MalformedStreamError(Exception):
    """The stream ended before any answer: nothing sent, or a body litellm could not parse (it then
    makes up a closing chunk with no role and no content, which must not pass for an empty answer)."""


_ANSWER_FIELDS = ("role", "content", "tool_calls", "function_call", "reasoning_content", "refusal")
_MAX_LEADING = 256  # chunks without an answer read before the stream is handed over (keep-alives, usage)


def _answers(chunk: Any) -> bool:
    """Whether a chunk starts an answer: a delta with a role, content or a tool call."""
    for choice in getattr(chunk, "choices", None) or ():
        delta = getattr(choice, "delta", None)
        if delta is not None and any(getattr(delta, f, None) for f in _ANSWER_FIELDS):
            return True
    return False


def _with_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    options = dict(kwargs.get("stream_options") or {})
    options["include_usage"] = True  # token counts (hence cost) arrive in the last chunk
    return {**kwargs, "stream_options": options}


def asked_for_usage(kwargs: dict[str, Any]) -> bool:
    options = kwargs.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _usage_only(chunk: Any) -> bool:
    """The chunk include_usage adds at the end: usage and no choices."""
    return not getattr(chunk, "choices", None) and getattr(chunk, "usage", None) is not None


def first_chunk_sync(call: Call, kwargs: dict[str, Any]) -> CallResult:
    module = litellm()  # imported before the clock starts (see calls.call_sync)
    start = time.perf_counter()
    try:
        stream = module.completion(**_with_usage(kwargs))
        iterator = iter(stream)
        first: list[Any] = []
        while not first or not _answers(first[-1]):
            try:
                first.append(next(iterator))
            except StopIteration:
                raise MalformedStreamError(_empty_message(first)) from None
            if len(first) > _MAX_LEADING:
                raise MalformedStreamError(f"no answer in the first {_MAX_LEADING} chunks")
    except Exception as exc:  # noqa: BLE001
        return failed(exc, start, kwargs)
    elapsed = time.perf_counter() - start
    return CallResult(response=_Peeked(first, iterator, start), latency_s=elapsed, first_token_s=elapsed)


async def first_chunk_async(call: Call, kwargs: dict[str, Any]) -> CallResult:
    module = litellm()
    start = time.perf_counter()
    try:
        stream = await module.acompletion(**_with_usage(kwargs))
        iterator = stream.__aiter__()
        first: list[Any] = []
        while not first or not _answers(first[-1]):
            try:
                first.append(await iterator.__anext__())
            except StopAsyncIteration:
                raise MalformedStreamError(_empty_message(first)) from None
            if len(first) > _MAX_LEADING:
                raise MalformedStreamError(f"no answer in the first {_MAX_LEADING} chunks")
    except Exception as exc:  # noqa: BLE001
        return failed(exc, start, kwargs)
    elapsed = time.perf_counter() - start
    return CallResult(response=_Peeked(first, iterator, start), latency_s=elapsed, first_token_s=elapsed)


def _empty_message(chunks: list[Any]) -> str:
    if not chunks:
        return "stream ended before the first chunk"
    return f"stream ended after {len(chunks)} chunk(s) without a role, content or tool call (a malformed reply)"


class _StreamBase:
    """Shared bookkeeping: collect chunks, then complete the attempt exactly once."""

    def __init__(self, router: Router, request: _Request, outcome: FlowResult) -> None:
        self._router = router
        self._request = request
        self._outcome = outcome
        self._seq = outcome.returned_seq
        self._peeked: _Peeked = outcome.responses[self._seq]  # type: ignore[index]
        self._chunks: list[Any] = list(self._peeked.first)
        self._hide_usage = not asked_for_usage(request.kwargs)  # the usage chunk was our request, not theirs
        self._done = False
        self.adaptroute = router.record(request, outcome)  # provisional until the stream ends

    def __del__(self) -> None:
        # A stream dropped without being read to its end still gets its outcome row.
        if not getattr(self, "_done", True):
            try:
                self._complete(None, closed_early=True)
            except Exception:  # noqa: BLE001 - never raise from a finaliser (e.g. at interpreter exit)
                pass

    def _complete(self, error: BaseException | None, *, closed_early: bool = False) -> None:
        if self._done:
            return
        self._done = True
        seq = self._seq
        attempt = self._outcome.attempts[seq]  # type: ignore[index]
        total = time.perf_counter() - self._peeked.started
        if error is None and not closed_early:
            full = litellm().stream_chunk_builder(self._chunks, messages=self._request.messages)
            usage = usage_of(full)
            model = self._request.plan.models[attempt.model]
            priced = priced_usage(model, usage)
            quality = None
            note = None
            scorer = self._router.scorer
            if scorer is not None and full is not None:
                try:
                    raw = self._router.score(self._request.messages, full, attempt.model)
                    quality = check_quality(raw, source="scorer")
                except Exception as exc:  # noqa: BLE001 - the streamed answer stands; the error is logged
                    note = scorer_failed(exc, self._request.plan.secrets)
            updated = replace(attempt, latency_s=total, cost_usd=priced.cost_usd, tokens_in=usage.tokens_in,
                              tokens_out=usage.tokens_out, quality=quality, error_message=note,
                              cached_tokens=usage.cached_tokens, input_cost_usd=priced.input_cost_usd,
                              cache_saved_usd=priced.cache_saved_usd)
        elif closed_early:
            updated = replace(attempt, latency_s=total, error_class="StreamClosed", counts_against_model=False,
                              error_message="the caller closed the stream before its end")
        else:
            failure = classify(error, self._request.plan.secrets)  # type: ignore[arg-type]
            updated = replace(attempt, latency_s=total, error_class=failure.error_class,
                              error_message=failure.message, counts_against_model=failure.counts_against_model)
        self._outcome.attempts[seq] = updated  # type: ignore[index]
        if not updated.ok:
            self._outcome.returned_seq = None
        if self._request.ends:
            self._request.ends[-1] = time.perf_counter() - self._request.started
        record = self._router.record(self._request, self._outcome)
        self.adaptroute = record
        self._router._learner.conclude(self._request.decision, record)


class RoutedStream(_StreamBase):
    """Iterate it like litellm's stream; ``.adaptroute`` holds the routing record (final at the end)."""

    def __iter__(self) -> Iterator[Any]:
        hide = self._hide_usage
        for chunk in self._peeked.first:
            if not (hide and _usage_only(chunk)):
                yield chunk
        try:
            for chunk in self._peeked.rest:
                self._chunks.append(chunk)
                if not (hide and _usage_only(chunk)):
                    yield chunk
        except GeneratorExit:
            self._complete(None, closed_early=True)
            raise
        except Exception as exc:
            self._complete(exc)
            raise scrub_exception(exc, self._request.plan.secrets)
        self._complete(None)

    def close(self) -> None:
        """Stop reading early: the attempt is logged as closed by the caller (not the model's fault)."""
        self._complete(None, closed_early=True)


class AsyncRoutedStream(_StreamBase):
    """``async for`` over it like litellm's async stream; ``.adaptroute`` as for RoutedStream."""

    async def __aiter__(self) -> AsyncIterator[Any]:
        hide = self._hide_usage
        for chunk in self._peeked.first:
            if not (hide and _usage_only(chunk)):
                yield chunk
        try:
            async for chunk in self._peeked.rest:
                self._chunks.append(chunk)
                if not (hide and _usage_only(chunk)):
                    yield chunk
        except GeneratorExit:
            self._complete(None, closed_early=True)
            raise
        except Exception as exc:
            self._complete(exc)
            raise scrub_exception(exc, self._request.plan.secrets)
        self._complete(None)

    async def aclose(self) -> None:
        self._complete(None, closed_early=True)
