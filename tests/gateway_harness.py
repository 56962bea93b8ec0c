"""Run the gateway for tests: a real uvicorn server on 127.0.0.1 (in a thread, or a subprocess for
signals), configured by a TOML file written the way an operator writes one, with models served by the
fake OpenAI-compatible provider."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adaptroute.server import create_app, load_config
from adaptroute.testing import FakeOpenAI

CLIENT_KEY = "gw-test-client-key-1234"
PROVIDER_KEY = "sk-provider-secret-9f8e7d6c5b4a"
ENV = {"GATEWAY_KEY": CLIENT_KEY, "PROVIDER_KEY": PROVIDER_KEY}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, numbers, booleans and arrays are spelled alike in TOML and JSON


def write_config(directory: Path, fake: FakeOpenAI, models: list[str], *, router: Mapping[str, Any] | None = None,
                 server: Mapping[str, Any] | None = None, name: str = "gateway.toml",
                 prices: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """A config with one [[models]] table per fake model (keys as env:PROVIDER_KEY); ``prices`` per
    model as (input, output) USD per token, else 1e-6 and 2e-6."""
    router = {"store": str(directory / "routes.duckdb"), "reward": {"quality": 1.0, "cost": 20.0}, "timeout_s": 5.0,
              "seed": 0, **(router or {})}
    server = {"client_keys": ["env:GATEWAY_KEY"], **(server or {})}
    lines = ["[router]", *(f"{k} = {_toml(v)}" for k, v in router.items()), ""]
    for model in models:
        price_in, price_out = (prices or {}).get(model, (1e-6, 2e-6))
        lines += ["[[models]]", f"name = {_toml(model)}", f'litellm_model = "openai/{model}"',
                  f"api_base = {_toml(fake.base_url)}", 'api_key = "env:PROVIDER_KEY"',
                  f"input_cost_per_token = {price_in!r}", f"output_cost_per_token = {price_out!r}", ""]
    lines += ["[server]", *(f"{k} = {_toml(v)}" for k, v in server.items())]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


class ThreadGateway:
    """uvicorn serving create_app(config) on a free port, in a thread with its own event loop."""

    def __init__(self, config_path: Path, env: Mapping[str, str] = ENV) -> None:
        import uvicorn

        self.config = load_config(config_path, environ=env)
        self.app = create_app(self.config)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning",
                                                     access_log=False, lifespan="on", timeout_graceful_shutdown=10))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)

    def __enter__(self) -> ThreadGateway:
        self._thread.start()
        deadline = time.time() + 30
        while not self._server.started:
            if time.time() > deadline or not self._thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def router(self) -> Any:
        return self.app.state.gateway.router

    def rows(self, table: str, decision_id: str | None = None) -> int:
        sql = {"decisions": "SELECT count(*) FROM decisions", "outcomes": "SELECT count(*) FROM outcomes",
               "attempts": "SELECT count(*) FROM attempts", "feedback": "SELECT count(*) FROM feedback"}[table]
        if decision_id is None:
            return int(self.router.store.query(sql)[0][0])
        return int(self.router.store.query(sql + " WHERE decision_id = ?", [decision_id])[0][0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_process(config_path: Path, port: int, env: Mapping[str, str] = ENV, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`adaptroute serve` in a subprocess, waited for until /healthz answers; SIGTERM at the end."""
    full_env = {**os.environ, **env, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    command = [sys.executable, "-m", "adaptroute.cli", "serve", "--config", str(config_path), "--port", str(port), *args]
    proc = subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"adaptroute serve exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("adaptroute serve did not answer /healthz in time")
