"""A small closed-loop HTTP/1.1 load generator (asyncio, keep-alive, stdlib only): ``clients``
connections, each sending one request after another for ``seconds``; every latency is recorded.

Light on purpose: on a 2-core machine a heavyweight client would measure itself, not the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    """Requests answered, their latencies, statuses and connection errors; ``merge`` pools rounds."""

    clients: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    def merge(self, other: LoadResult) -> LoadResult:
        statuses = dict(self.statuses)
        for k, v in other.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
        return LoadResult(self.clients, self.seconds + other.seconds, self.latencies_s + other.latencies_s,
                          statuses, self.errors + other.errors)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies_s)
        if not data:
            return float("nan")
        k = min(len(data) - 1, max(0, round(q / 100 * (len(data) - 1))))
        return data[k]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0"))
    return status, await reader.readexactly(length) if length else b""


async def _client(host: str, port: int, request: bytes, stop_at: float, warm_until: float, result: LoadResult) -> None:
    reader = writer = None
    start = time.perf_counter()
    while time.perf_counter() < stop_at:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            start = time.perf_counter()
            writer.write(request)
            status, _ = await _read_response(reader)  # type: ignore[arg-type]
            end = time.perf_counter()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if time.perf_counter() >= warm_until:
                result.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        if warm_until <= end <= stop_at:  # completions in the window, wherever they started: a slow
            # target's long requests count as throughput too (only those still open at the end are lost)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.latencies_s.append(end - start)
    if writer is not None:
        writer.close()


def build_request(host: str, port: int, path: str, payload: dict, key: str | None) -> bytes:
    body = json.dumps(payload).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def run_load(host: str, port: int, path: str, payload: dict, *, clients: int, seconds: float,
             warmup_s: float = 1.0, key: str | None = None) -> LoadResult:
    """Closed loop: ``clients`` connections for ``warmup_s + seconds``; only the last ``seconds`` count."""
    request = build_request(host, port, path, payload, key)
    result = LoadResult(clients, seconds)

    async def main() -> None:
        now = time.perf_counter()
        warm_until, stop_at = now + warmup_s, now + warmup_s + seconds
        await asyncio.gather(*[_client(host, port, request, stop_at, warm_until, result) for _ in range(clients)])

    asyncio.run(main())
    return result
