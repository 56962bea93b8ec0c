"""``adaptroute serve``: check a config, then run the gateway on uvicorn (one or several workers).

One worker builds its Router before the port opens, so a bad store or model fails the start with one
clear error. With several workers each process builds its own Router from the config file (uvicorn's
app factory): that needs a store several processes can write (PostgreSQL); a DuckDB file has one
writer, so more than one worker on it is refused before anything starts.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from .config_file import GatewayConfig, check_exposure, load_config

__all__ = ["check_config", "serve", "worker_app"]

_CONFIG_ENV = "ADAPTROUTE_GATEWAY_CONFIG"  # how the parent hands the config path to its workers


def check_config(config: GatewayConfig) -> str:
    """Everything a start would check short of opening the store and the port; a one-line summary."""
    from ..router import Router

    check_exposure(config.server.host, config.server, config.path)
    router = Router(**{**config.router_kwargs(), "store": ":memory:"})  # prices, policy, scorer, settings
    router.close()
    auth = f"{len(config.server.client_key_hashes)} client key(s)" if config.server.auth_required else "no client keys"
    return (f"{config.path}: OK: {len(config.models)} model(s) ({', '.join(m.name for m in config.models)}), "
            f"store {config.store_display}, {auth}, {config.server.host}:{config.server.port}")


def _with_overrides(config: GatewayConfig, host: str | None, port: int | None, workers: int | None) -> GatewayConfig:
    server = config.server
    changes: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None}
    return replace(config, server=replace(server, **changes)) if changes else config


def serve(path: str, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Run until SIGTERM or SIGINT: stop accepting, finish requests in flight (at most
    server.shutdown_timeout_s), flush and close the log."""
    try:
        import uvicorn
        import starlette  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"adaptroute serve needs the server extra: pip install 'adaptroute[server]' ({exc})") from None

    config = _with_overrides(load_config(path), host, port, workers)
    settings = config.server
    check_exposure(settings.host, settings, config.path)
    if settings.workers < 1:
        raise ConfigError(f"--workers: expected at least 1, got {settings.workers}")
    if settings.workers > 1 and not config.store_is_shared:
        raise ConfigError(
            f"{config.path}: router.store: {settings.workers} workers cannot share the DuckDB log {config.store_display} "
            "(DuckDB allows one writing process per file); run one worker, or use a PostgreSQL store "
            "(store = \"postgresql://...\") that every worker writes"
        )
    common: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "timeout_graceful_shutdown": settings.shutdown_timeout_s,
        "access_log": False, "lifespan": "on", "log_level": "info", "server_header": False,
        "backlog": 4096, "timeout_keep_alive": 30,
    }
    if settings.workers == 1:
        from ..router import Router
        from .app import create_app

        router = Router(**config.router_kwargs())  # fails here, before the port opens
        app = create_app(config, router, owns_router=True)
        with _sigterm_is_a_clean_stop():
            uvicorn.Server(uvicorn.Config(app, **common)).run()
        return
    os.environ[_CONFIG_ENV] = os.path.abspath(path)
    with _sigterm_is_a_clean_stop():
        uvicorn.run("adaptroute.server.run:worker_app", factory=True, workers=settings.workers, **common)


@contextmanager
def _sigterm_is_a_clean_stop() -> Iterator[None]:
    """uvicorn drains on SIGTERM, then raises the signal again under the handler it found: with this
    one the process exits 0 after a drained stop, instead of dying by the signal it already handled."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_app() -> Any:
    """uvicorn's factory in each worker process: the config file read again, a Router of its own."""
    from .app import create_app

    path = os.environ.get(_CONFIG_ENV)
    if not path:
        raise ConfigError(f"{_CONFIG_ENV} is not set: start workers with `adaptroute serve --workers N`")
    return create_app(load_config(path))
