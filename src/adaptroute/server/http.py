"""Request bodies (size-limited JSON) and JSON responses, OpenAI's error body included."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .problems import Problem
from .wire import dumps, error_payload

__all__ = ["RequestProblem", "json_response", "problem_response", "read_json"]

DECISION_HEADER = "X-Adaptroute-Decision-Id"


class RequestProblem(Exception):
    """Raised while reading a request: answered with ``problem`` as it stands."""

    def __init__(self, problem: Problem, headers: dict[str, str] | None = None) -> None:
        super().__init__(problem.message)
        self.problem = problem
        self.headers = headers or {}


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(payload), status_code=status, media_type="application/json", headers=headers)


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    extra = dict(headers or {})
    if problem.decision_id is not None:
        extra[DECISION_HEADER] = problem.decision_id
    body = error_payload(problem.message, problem.kind, problem.code, problem.param, problem.decision_id)
    return json_response(problem.status, body, extra)


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON: 413 past ``limit`` bytes (checked on Content-Length first, then while
    reading, for chunked bodies), 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestProblem(Problem(400, "Content-Length is not a number", "invalid_request_error")) from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise RequestProblem(Problem(400, "the request body is empty: expected a JSON object", "invalid_request_error"))
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise RequestProblem(Problem(400, f"the request body is not valid JSON{where}", "invalid_request_error")) from None


def _too_large(limit: int) -> RequestProblem:
    return RequestProblem(Problem(413, f"the request body is larger than {limit} bytes (server.max_body_bytes)",
                                  "invalid_request_error", "request_too_large"), {"Connection": "close"})
