"""The gateway's ASGI app (Starlette): routes, client-key checks, and the Router's lifetime.

``create_app(config)`` builds the Router at startup (in each worker process) and flushes and closes
its log at shutdown, after uvicorn has stopped accepting and finished the requests in flight.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import AdaptRouteError
from ..router import Router
from .chat import chat_completions
from .config_file import GatewayConfig
from .gateway import MODEL_PREFIX, Gateway
from .http import RequestProblem, json_response, problem_response, read_json
from .problems import Problem, problem_for

__all__ = ["create_app"]

Handler = Callable[[Gateway, Request], Awaitable[Response]]
_UNAUTHORIZED = Problem(401, "Incorrect API key provided: send a client key of this gateway as "
                             "'Authorization: Bearer <key>'.", "invalid_request_error", "invalid_api_key")


def _endpoint(gateway: Gateway, name: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Check the client key (unless the path is open), run the handler, count the response."""
    open_path = name in gateway.settings.open_paths

    async def endpoint(request: Request) -> Response:
        if not open_path and not gateway.keys.allows(request.headers.get("authorization")):
            response = problem_response(_UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        else:
            response = await handler(gateway, request)
        gateway.metrics.response(name, response.status_code)
        return response

    return endpoint


async def _feedback(gateway: Gateway, request: Request) -> Response:
    try:
        payload = await read_json(request, gateway.settings.max_body_bytes)
    except RequestProblem as exc:
        return problem_response(exc.problem, exc.headers)
    if not isinstance(payload, dict) or "decision_id" not in payload or "quality" not in payload:
        return problem_response(Problem(400, 'expected {"decision_id": "...", "quality": <number in [0, 1] or bool>}',
                                        "invalid_request_error"))
    source = payload.get("source", "api")
    try:
        gateway.router.feedback(payload["decision_id"], payload["quality"], source=source)
    except AdaptRouteError as exc:
        problem = problem_for(exc)
        if problem is None:
            raise
        return problem_response(problem)
    return json_response(200, {"object": "adaptroute.feedback", "decision_id": payload["decision_id"],
                               "quality": float(payload["quality"]), "source": source})


async def _models(gateway: Gateway, request: Request) -> Response:
    """One entry per task: "adaptroute" (the default task) and "adaptroute/<task>"."""
    created = int(gateway.started)
    data = [{"id": MODEL_PREFIX if task == "default" else f"{MODEL_PREFIX}/{task}", "object": "model",
             "created": created, "owned_by": "adaptroute"} for task in gateway.known_tasks()]
    return json_response(200, {"object": "list", "data": data})


async def _healthz(gateway: Gateway, request: Request) -> Response:
    router = gateway.router
    return json_response(200, {"status": "ok", "models": list(router.models), "policy_version": router.policy.version,
                               "cooling_down": sorted(router.cooling_down()), "worker_pid": os.getpid()})


async def _metrics(gateway: Gateway, request: Request) -> Response:
    return PlainTextResponse(gateway.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = "method not allowed" if status == 405 else f"no route {request.method} {request.url.path}"
    return problem_response(Problem(status, message, "invalid_request_error", "not_found" if status == 404 else None))


async def _server_error(request: Request, exc: Exception) -> Response:
    # A bug, never a provider's text: the message says nothing about what failed inside.
    return problem_response(Problem(500, "internal error in the gateway", "server_error"))


def create_app(config: GatewayConfig, router: Router | None = None, *, owns_router: bool = False) -> Starlette:
    """The gateway for ``config``. Without ``router``, each worker builds its own at startup; a router
    handed in is closed at shutdown only with ``owns_router`` (else its log is flushed)."""
    gateway = Gateway(config, router, owns_router=owns_router)
    from .views import dashboard, router_state  # the pages that read the log

    handlers: list[tuple[str, str, Handler]] = [
        ("/v1/chat/completions", "POST", chat_completions),
        ("/chat/completions", "POST", chat_completions),
        ("/v1/feedback", "POST", _feedback),
        ("/v1/models", "GET", _models),
        ("/healthz", "GET", _healthz),
        ("/metrics", "GET", _metrics),
        ("/v1/router/state", "GET", router_state),
        ("/dashboard", "GET", dashboard),
    ]
    routes = [Route(path, _endpoint(gateway, path, handler), methods=[method]) for path, method, handler in handlers]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(gateway.start)  # the log file opens here, in this worker
        gateway.started = time.time()
        try:
            yield
        finally:
            await asyncio.to_thread(gateway.close)  # in-flight requests are done: flush the log

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: _not_found, 405: _not_found, 500: _server_error})
    app.state.gateway = gateway
    return app
