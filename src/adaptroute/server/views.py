"""GET /v1/router/state and GET /dashboard: what the router is doing, from its live log and policy."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .dashboard import render_dashboard
from .gateway import Gateway
from .http import json_response
from .live import live_figures

__all__ = ["dashboard", "router_state"]

_NEUTRAL = [{"role": "user", "content": "hello"}]


def _num(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


async def router_state(gateway: Gateway, request: Request) -> Response:
    """Per task: each model's share of the answers in the log, and the policy's current predictions
    (quality, cost, latency, reward, probability) for the task's latest request in this process."""
    figures = await live_figures(gateway)
    router = gateway.router
    tasks = list(dict.fromkeys([*gateway.known_tasks(), *(t for t in figures.reports if t != "all")]))
    out: dict[str, Any] = {}
    for task in tasks:
        messages = gateway.latest.get(task)
        scores = {s.model: s for s in router.recommend(messages or _NEUTRAL, task=task)}
        rep = figures.reports.get(task)
        shares = rep.model_shares if rep is not None else {}
        out[task] = {
            "requests": rep.requests if rep is not None else 0,
            "predicted_for": "the task's latest request" if messages else "a one-word prompt (no request seen yet)",
            "models": {
                name: {"share": shares.get(name, 0.0), "probability": _num(s.probability),
                       "predicted_quality": _num(s.quality), "predicted_cost_usd": _num(s.cost_usd),
                       "predicted_latency_s": _num(s.latency_s), "predicted_reward": _num(s.reward)}
                for name, s in scores.items()
            },
        }
    weights = router.reward
    return json_response(200, {
        "object": "adaptroute.router_state",
        "policy": {"name": router.policy.name, "version": router.policy.version},
        "reward": {"quality": weights.quality, "cost": weights.cost, "latency": weights.latency, "failure": weights.failure},
        "models": list(router.models),
        "cooling_down": {m: round(s, 3) for m, s in router.cooling_down().items()},
        "log_requests": figures.requests,
        "tasks": out,
    })


async def dashboard(gateway: Gateway, request: Request) -> Response:
    figures = await live_figures(gateway)
    return HTMLResponse(render_dashboard(figures, gateway.router.models, gateway.router.cooling_down()))
