"""``python -m adaptroute.testing [--port 9999]``: run the fake OpenAI-compatible provider until
interrupted (for trying the gateway, or benchmarking it, without any real provider)."""

from __future__ import annotations

import argparse
import signal
import threading

from .behaviors import Behavior
from .fake_openai import FakeOpenAI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adaptroute.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--delay-s", type=float, default=0.0, help="every answer waits this long (a model's latency)")
    args = parser.parse_args(argv)
    server = FakeOpenAI(record=False, host=args.host, port=args.port)
    server.start()
    server.default = Behavior.ok(delay_s=args.delay_s)
    print(f"fake OpenAI-compatible provider on {server.base_url} (any model name answers)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
