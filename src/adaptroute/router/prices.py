"""Model prices and context windows from litellm's bundled price table, read as JSON.

Reading the file directly keeps `Router(...)` from importing litellm (several seconds); the first
routed call pays for that import instead.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["lookup_model_info"]

_TABLE_FILE = "model_prices_and_context_window_backup.json"


@lru_cache(maxsize=1)
def _price_table() -> dict[str, dict[str, Any]]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    for location in spec.submodule_search_locations:
        path = Path(location) / _TABLE_FILE
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            return {k: v for k, v in data.items() if isinstance(v, dict)}
    return {}


def lookup_model_info(model: str) -> dict[str, Any] | None:
    """litellm's entry for ``model`` (exact name, or without a provider prefix such as ``openai/``)."""
    table = _price_table()
    for key in (model, model.split("/", 1)[-1]):
        info = table.get(key)
        if info and info.get("input_cost_per_token") is not None and info.get("output_cost_per_token") is not None:
            return info
    return None
