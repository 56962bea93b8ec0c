"""What one gateway process holds: its config, its own Router, metrics, and the client-key check.

Each process (each uvicorn worker) builds its own Router from the config at startup, so several
workers work as soon as their store can take several writers (PostgreSQL); a DuckDB file cannot.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import ConfigError
from ..router import Router
from ..router.calls import litellm
from .auth import KeyChecker
from .config_file import GatewayConfig
from .metrics import Metrics

__all__ = ["Gateway"]

MODEL_PREFIX = "adaptroute"


class Gateway:
    def __init__(self, config: GatewayConfig, router: Router | None = None, *, owns_router: bool = False) -> None:
        self.config = config
        self.settings = config.server
        self.keys = KeyChecker(config.server.client_key_hashes)
        self.metrics = Metrics(max_tasks=max(100, len(config.server.tasks)))
        self._router = router
        self._owns_router = router is None or owns_router
        # The latest messages of each task (in memory only, never written): what /v1/router/state
        # asks the policy about. Bounded like the metrics' task labels.
        self.latest: dict[str, list[dict[str, Any]]] = {}
        self.started = time.time()
        self.live: Any = None  # the latest LiveFigures (server.live), shared by the dashboard and state
        self.live_lock = asyncio.Lock()

    @property
    def router(self) -> Router:
        if self._router is None:
            raise RuntimeError("the gateway has not started")
        return self._router

    def start(self) -> None:
        """Build the Router (unless one was handed in) and import litellm now: its import takes
        seconds, which the first request would otherwise wait for."""
        if self._router is None:
            self._router = Router(**self.config.router_kwargs())
        litellm()

    def close(self) -> None:
        """Flush the log and close it (if this gateway built the router)."""
        if self._router is not None:
            if self._owns_router:
                self._router.close()
            else:
                self._router.store.flush()

    def task_of(self, model: Any, header: str | None) -> str:
        """``model`` is "adaptroute" or "adaptroute/<task>"; the task may come as X-Adaptroute-Task."""
        if not isinstance(model, str):
            raise ConfigError(f"model: expected \"{MODEL_PREFIX}\" or \"{MODEL_PREFIX}/<task>\", got {model!r}")
        if model == MODEL_PREFIX:
            task = header.strip() if header else None
        elif model.startswith(MODEL_PREFIX + "/") and len(model) > len(MODEL_PREFIX) + 1:
            task = model[len(MODEL_PREFIX) + 1:]
            if header and header.strip() != task:
                raise ConfigError(f"model names task {task!r} but X-Adaptroute-Task says {header.strip()!r}")
        else:
            raise ConfigError(f"model: expected \"{MODEL_PREFIX}\" or \"{MODEL_PREFIX}/<task>\", got {model!r}")
        task = task or "default"
        allowed = self.settings.tasks
        if allowed and task not in allowed and task != "default":
            raise ConfigError(f"unknown task {task!r}: this gateway serves {', '.join(allowed)}")
        return task

    def remember(self, task: str, messages: list[dict[str, Any]]) -> None:
        if task in self.latest or len(self.latest) < 1000:
            self.latest[task] = messages

    def known_tasks(self) -> list[str]:
        """Configured tasks, else every task seen by this process, then "default"."""
        tasks = list(self.settings.tasks) or sorted(self.latest)
        return ["default", *[t for t in tasks if t != "default"]]
