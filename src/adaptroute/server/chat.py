"""POST /v1/chat/completions: OpenAI's request in, Router.acomplete, OpenAI's response (or SSE) out.

Every field of the request other than model, messages and stream options passes to Router.acomplete,
as in Router.complete: the router's own per-request controls (``reward`` as a table of weights,
``models`` as an allow-list, ``tenant``, ``metadata``) and litellm's parameters. Connection and
credential parameters (api_base, api_key, ...) are refused: they belong to the operator's config, and
a client that could set them could send the operator's traffic, or keys, anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..config import RewardWeights
from ..errors import AdaptRouteError
from .gateway import Gateway
from .http import DECISION_HEADER, RequestProblem, json_response, problem_response, read_json
from .problems import Problem, problem_for
from .wire import chunk_payload, completion_payload, error_payload, record_payload, sse

__all__ = ["chat_completions"]

_OURS = frozenset({"model", "messages", "stream", "stream_options"})
_CLIENT_FORBIDDEN = frozenset({
    "api_key", "api_base", "base_url", "api_version", "custom_llm_provider", "organization", "project",
    "extra_headers", "headers", "timeout", "max_retries", "mock_response", "mock_timeout", "mock_tool_calls",
    "azure_ad_token", "azure_ad_token_provider", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
    "aws_region_name", "vertex_credentials", "vertex_project", "vertex_location", "client", "litellm_params",
    "litellm_metadata", "callbacks", "logger_fn", "input_cost_per_token", "output_cost_per_token",
})
_DONE = b"data: [DONE]\n\n"


def _bad(message: str, param: str | None = None) -> RequestProblem:
    return RequestProblem(Problem(400, message, "invalid_request_error", None, param))


def _parse(gateway: Gateway, payload: Any, task_header: str | None) -> tuple[str, list[Any], dict[str, Any], bool]:
    if not isinstance(payload, dict):
        raise _bad("the request body must be a JSON object")
    if "messages" not in payload:
        raise _bad("messages: a required field is missing", "messages")
    try:
        task = gateway.task_of(payload.get("model"), task_header)
    except AdaptRouteError as exc:
        raise RequestProblem(Problem(400, str(exc), "invalid_request_error", "model_not_found", "model")) from None
    stream = payload.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise _bad("stream: expected true or false", "stream")
    options = payload.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream):
        raise _bad("stream_options: expected an object, and only with stream: true", "stream_options")
    include_usage = bool(options and options.get("include_usage"))
    kwargs: dict[str, Any] = {}
    for key, value in payload.items():
        if key in _OURS:
            continue
        if key in _CLIENT_FORBIDDEN or key.startswith(("litellm_", "aws_", "azure_", "vertex_", "mock_")):
            raise _bad(f"{key}: set by the gateway's configuration, not by clients", key)
        kwargs[key] = _reward(value) if key == "reward" else value
    if stream:
        kwargs["stream"] = True
        if options:
            kwargs["stream_options"] = dict(options)
    return task, payload["messages"], kwargs, include_usage


def _reward(value: Any) -> RewardWeights:
    """Per-request reward weights, as JSON: {"quality": 1, "cost": 50} (per unit, as in the config)."""
    if not isinstance(value, dict):
        raise _bad('reward: expected an object of weights, e.g. {"quality": 1, "cost": 50}', "reward")
    try:
        return RewardWeights(**value)
    except AdaptRouteError as exc:
        raise _bad(f"reward: {exc}", "reward") from None


async def chat_completions(gateway: Gateway, request: Request) -> Response:
    try:
        payload = await read_json(request, gateway.settings.max_body_bytes)
        task, messages, kwargs, include_usage = _parse(gateway, payload, request.headers.get("x-adaptroute-task"))
    except RequestProblem as exc:
        return problem_response(exc.problem, exc.headers)
    metrics = gateway.metrics
    router = gateway.router
    metrics.in_flight += 1
    try:
        try:
            result = await router.acomplete(messages, task=task, **kwargs)
        except AdaptRouteError as exc:
            problem = problem_for(exc)
            if problem is None:
                raise
            metrics.request(task, problem.status, attempts=getattr(exc, "attempts", ()))
            return problem_response(problem, _retry_after(gateway) if problem.status == 429 else None)
        gateway.remember(task, messages)
        if kwargs.get("stream"):
            headers = {DECISION_HEADER: result.adaptroute.decision_id, "Cache-Control": "no-cache"}
            metrics.in_flight += 1  # held by the stream until it ends
            return StreamingResponse(_events(gateway, result, task, include_usage), media_type="text/event-stream",
                                     headers=headers)
        record = result.adaptroute
        metrics.request(task, 200, record)
        return json_response(200, completion_payload(result, record), {DECISION_HEADER: record.decision_id})
    finally:
        metrics.in_flight -= 1


def _retry_after(gateway: Gateway) -> dict[str, str]:
    cooling = gateway.router.cooling_down()
    if not cooling:
        return {}
    return {"Retry-After": str(max(1, int(min(cooling.values()) + 0.999)))}


async def _events(gateway: Gateway, stream: Any, task: str, include_usage: bool) -> AsyncIterator[bytes]:
    """SSE as OpenAI sends it. The tail (the chunk that ends the choice and the usage chunk) is held
    until the stream ends, so the last event carries the final routing record; content chunks go out
    as they arrive."""
    iterator = stream.__aiter__()
    model = stream.adaptroute.model
    held: list[dict[str, Any]] = []
    finished = False
    status = 200
    try:
        try:
            async for chunk in iterator:
                data = chunk_payload(chunk, model, include_usage)
                if data is None:
                    continue
                choices = data.get("choices") or []
                if not choices or any(c.get("finish_reason") for c in choices if isinstance(c, dict)):
                    held.append(data)
                    continue
                for earlier in held:  # a tail that was not the end after all
                    yield sse(earlier)
                held.clear()
                yield sse(data)
        except Exception as exc:  # noqa: BLE001 - the provider broke the stream after its first token
            finished = True
            status = 502
            for earlier in held:
                yield sse(earlier)
            attempts = stream.adaptroute.attempts
            said = attempts[-1].error_class if attempts else type(exc).__name__
            yield sse(error_payload(f"the model's stream broke: {said}", "api_error", "upstream_error",
                                    decision_id=stream.adaptroute.decision_id))
            return
        finished = True
        if held:
            held[-1]["adaptroute"] = record_payload(stream.adaptroute)
        for data in held:
            yield sse(data)
        yield _DONE
    finally:
        if not finished:  # the client went away: the attempt is logged as closed by the caller
            await stream.aclose()
        gateway.metrics.request(task, status if finished else 499, stream.adaptroute)
        gateway.metrics.in_flight -= 1
