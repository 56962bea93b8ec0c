"""litellm, loaded once per process when the first Router is built (never by ``import adaptroute``).

Its import takes seconds, and its first calls load tokenizers and more modules lazily: done at
construction (``warm_up``), none of that lands in a request's measured latency. Nothing global is set
on the way: litellm's price-table source (``LITELLM_LOCAL_MODEL_COST_MAP``), its debug banners and its
callbacks stay as the host application configured them.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["litellm", "warm_up"]

_module: Any = None
_warm = False
_lock = threading.Lock()


def litellm() -> Any:
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                import litellm as module

                _module = module
    return _module


def warm_up() -> None:
    """Import litellm and run one offline mock call and one mock stream through it (litellm's own
    ``mock_response``, with ``no-log`` so the host's logging callbacks see nothing): the lazy loading
    of its first calls happens here, once per process."""
    global _warm
    module = litellm()
    if _warm:
        return
    with _lock:
        if _warm:
            return
        messages = [{"role": "user", "content": "warm up"}]
        quiet = {"no-log": True, "mock_response": "ok", "model": "gpt-4o-mini", "messages": messages}
        try:
            module.completion(**quiet)
            for _ in module.completion(**quiet, stream=True, stream_options={"include_usage": True}):
                pass
        except Exception:  # noqa: BLE001 - a warm-up that fails costs only the first call's time
            pass
        _warm = True
