"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for tests of the real HTTP path.

litellm reaches it as ``openai/<model>`` with ``api_base=server.base_url``, so its real HTTP client runs
(timeouts, status codes, broken connections, SSE streams), and nothing leaves the machine::

    with FakeOpenAI() as server:
        server.set("flaky", Behavior.rate_limited(retry_after=1), Behavior.ok())  # 429 once, then fine
        spec = server.spec("flaky")          # a ModelSpec pointing at the server, with test prices
        ...
        server.count("flaky")                # requests seen for that model
        server.requests("flaky")[0].json     # what was sent (bodies and headers are recorded)

What a model does is chosen by the ``model`` field of each request: ``set(model, b1, b2, ..., bn)``
plays b1, b2, ... once each, then bn for every later request. Unknown models answer normally.
Behaviours: answer (with usage tokens), answer slowly, any status with an OpenAI-style error body (429
with or without Retry-After, 500/503, 400 context_length_exceeded, 401 echoing the API key), drop the
connection, malformed JSON, and SSE streams (``stream: true``) that finish or break before or after
their first token.

The server is asyncio in a background thread (stdlib only): thousands of concurrent keep-alive
connections cost it one coroutine each.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .batches import FakeBatches
from .behaviors import Behavior, RecordedRequest
from .prompt_cache import PromptCache, usage
from .http_wire import _chunk, _error_body, _parse_head, _read_body, _send_event, _send_json, _send_raw

__all__ = ["Behavior", "FakeOpenAI", "RecordedRequest", "fake_openai"]


class _Abort(Exception):
    """Close the connection now, without a response."""


class FakeOpenAI:
    """See the module docstring. ``record=False`` keeps only counts (for very many requests)."""

    def __init__(
        self, *, record: bool = True, host: str = "127.0.0.1", port: int = 0, backlog: int = 4096,
        cache_min_tokens: int = 32, batch_polls: int = 2,
    ) -> None:
        self.host = host
        self.record = record
        self._port = port
        self._backlog = backlog
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Behavior]] = {}
        self._cycling: set[str] = set()  # models whose script repeats (cycle) instead of keeping its last
        self._counts: Counter[str] = Counter()
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self.max_in_flight = 0  # the most requests handled at once so far
        self.connections = 0  # TCP connections accepted so far
        self._ids = itertools.count(1)
        self.prompt_cache = PromptCache(cache_min_tokens)  # repeated prompt prefixes report cached tokens
        self.batches = FakeBatches(self, batch_polls)  # the files and batches endpoints
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.default = Behavior.ok()  # what models without a script do

    # -- lifetime ---------------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"fake OpenAI server did not start: {self._error}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            self._thread = None
            self._loop = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """What litellm takes as ``api_base``."""
        return f"{self.url}/v1"

    # -- scripting and inspection -----------------------------------------------------------------
    def set(self, model: str, *behaviors: Behavior) -> None:
        """Play ``behaviors`` in order for ``model``, one per request; the last one then stays."""
        if not behaviors:
            raise ValueError("set() needs at least one Behavior")
        with self._lock:
            self._scripts[model] = deque(behaviors)
            self._cycling.discard(model)

    def cycle(self, model: str, *behaviors: Behavior) -> None:
        """Play ``behaviors`` in order for ``model``, then again from the first, for ever (faults at a
        fixed rate under load: ``cycle("m", *[Behavior.ok()] * 9, Behavior.server_error())``)."""
        if not behaviors:
            raise ValueError("cycle() needs at least one Behavior")
        with self._lock:
            self._scripts[model] = deque(behaviors)
            self._cycling.add(model)

    def reset(self) -> None:
        """Forget scripts, counts and recorded requests."""
        with self._lock:
            self._scripts.clear()
            self._cycling.clear()
            self._counts.clear()
            self._requests.clear()
            self.max_in_flight = 0
        self.prompt_cache.clear()

    def count(self, model: str) -> int:
        with self._lock:
            return self._counts[model]

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def requests(self, model: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if model is None or r.model == model]

    def spec(self, model: str, name: str | None = None, *, api_key: str = "sk-fake-test-key-0000", **extra: Any) -> Any:
        """A ModelSpec that routes ``model`` to this server through litellm's OpenAI client."""
        from ..config import ModelSpec

        params: dict[str, Any] = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, **extra}
        return ModelSpec(name=name or model, litellm_model=f"openai/{model}", api_base=self.base_url,
                         api_key=api_key, **params)

    def _note_request(self, model: str) -> None:
        """Count a request that arrived inside a batch (chat requests are counted as they arrive)."""
        with self._lock:
            self._counts[model] += 1

    def _next_behavior(self, model: str | None) -> Behavior:
        with self._lock:
            script = self._scripts.get(model or "")
            if not script:
                return self.default
            if model in self._cycling:
                script.rotate(-1)
                return script[-1]
            return script.popleft() if len(script) > 1 else script[0]

    # -- the server -------------------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._connection, self.host, self._port, backlog=self._backlog, limit=1 << 22)
            )
            self._port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                method, path, headers = _parse_head(head)
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await _read_body(reader, headers)
                keep_alive = await self._request(method, path, headers, body, writer)
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    return
        except _Abort:
            writer.transport.abort()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            writer.transport.abort()
        except asyncio.CancelledError:  # the server is stopping: end quietly (not as a cancelled task)
            writer.transport.abort()
        finally:
            if task is not None:
                self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _request(self, method: str, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and route.endswith("/models"):
            await _send_json(writer, 200, {"object": "list", "data": []})
            return True
        batch = self.batches.route(method, route, headers, body)
        if batch is not None:
            status, answer = batch
            if isinstance(answer, bytes):
                await _send_raw(writer, status, answer, "application/octet-stream")
            else:
                await _send_json(writer, status, answer)
            return True
        if method != "POST" or not route.endswith("/chat/completions"):
            await _send_json(writer, 404, _error_body(f"no route {method} {path}", "invalid_request_error", None))
            return True
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        model = payload.get("model") if isinstance(payload, dict) else None
        with self._lock:
            self._counts[str(model)] += 1
            if self.record:
                self._requests.append(RecordedRequest(method, path, dict(headers), body, model))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if not isinstance(payload, dict):
                await _send_json(writer, 400, _error_body("request body is not a JSON object", "invalid_request_error", None))
                return True
            return await self._play(self._next_behavior(model), payload, headers, writer)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _play(self, b: Behavior, payload: dict[str, Any], headers: dict[str, str], writer: asyncio.StreamWriter) -> bool:
        if b.delay_s > 0:
            await asyncio.sleep(b.delay_s)
        model = str(payload.get("model"))
        stream = bool(payload.get("stream"))
        if b.kind == "drop" or (b.kind == "stream_break" and not stream):
            raise _Abort
        if b.kind == "error":
            key = headers.get("authorization", "").removeprefix("Bearer ").strip()
            message = b.error_message.replace("{api_key}", key).replace("{api_key_head}", key[:12]).replace(
                "{headers}", "; ".join(f"{name}: {value}" for name, value in headers.items()))
            extra = {"Retry-After": b.retry_after} if b.retry_after is not None else {}
            await _send_json(writer, b.status, _error_body(message, b.error_type, b.error_code), extra)
            return True
        if b.kind == "malformed" or (b.kind == "stream_malformed" and not stream):
            await _send_raw(writer, 200, b'{"id": "chatcmpl-broken", "choices": [{"message": ', "application/json")
            return True
        content = b.content if b.content is not None else f"answer from {model}"
        created = int(time.time())
        ident = f"chatcmpl-fake-{next(self._ids)}"
        if not stream:
            await _send_json(writer, 200, {
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": usage(b.prompt_tokens, b.completion_tokens, self.prompt_cache.cached_tokens(model, payload, b.prompt_tokens)),
            })
            return True
        await self._stream(b, payload, model, ident, created, content, writer)
        return True

    async def _stream(self, b: Behavior, payload: dict[str, Any], model: str, ident: str, created: int,
                      content: str, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        )
        await writer.drain()
        if b.kind == "stream_break" and not b.after_first_token:
            raise _Abort
        if b.kind == "stream_malformed":
            for _ in range(3):
                writer.write(_chunk(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n'))
            writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
            return

        def event(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
            return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}

        words = content.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            await _send_event(writer, event(delta))
            if b.kind == "stream_break":
                await asyncio.sleep(0.02)  # let the client read the first token before the break
                raise _Abort
            if b.chunk_delay_s:
                await asyncio.sleep(b.chunk_delay_s)
        await _send_event(writer, event({}, "stop"))
        if (payload.get("stream_options") or {}).get("include_usage"):
            usage_ = usage(b.prompt_tokens, b.completion_tokens, self.prompt_cache.cached_tokens(model, payload, b.prompt_tokens))
            await _send_event(writer, {"id": ident, "object": "chat.completion.chunk", "created": created,
                                       "model": model, "choices": [], "usage": usage_})
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()


@contextmanager
def fake_openai(**kwargs: Any) -> Iterator[FakeOpenAI]:
    """``with fake_openai() as server: ...``: a started FakeOpenAI, stopped at the end."""
    server = FakeOpenAI(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()

