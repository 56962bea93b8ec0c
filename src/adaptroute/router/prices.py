"""Model prices and context windows from litellm's price table (``litellm.model_cost``).

The same table litellm prices its own calls with, loaded as the host application configured litellm
(the current table, or the copy bundled with the package when LITELLM_LOCAL_MODEL_COST_MAP=True).
"""

from __future__ import annotations

import difflib
from typing import Any

from .litellm_loader import litellm

__all__ = ["lookup_model_info", "similar_models"]


def _price_table() -> dict[str, Any]:
    table = getattr(litellm(), "model_cost", None)
    return table if isinstance(table, dict) else {}


def _priced(info: Any) -> bool:
    return isinstance(info, dict) and info.get("input_cost_per_token") is not None and info.get("output_cost_per_token") is not None


def lookup_model_info(model: str) -> dict[str, Any] | None:
    """litellm's entry for ``model`` (exact name, or without a provider prefix such as ``openai/``)."""
    table = _price_table()
    for key in (model, model.split("/", 1)[-1]):
        info = table.get(key)
        if _priced(info):
            return info
    return None


def similar_models(model: str, n: int = 3) -> list[str]:
    """Priced model names close to ``model`` (for "did you mean ...?")."""
    names = [k for k, v in _price_table().items() if _priced(v)]
    bare = model.split("/", 1)[-1]
    return difflib.get_close_matches(bare, names, n=n, cutoff=0.75)
