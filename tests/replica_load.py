"""The traffic the replica tests send: three tasks, three models whose quality differs by task, a
deterministic scorer (the quality a request gets depends on its text and the model only)."""

from __future__ import annotations

import hashlib
from typing import Any

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]
TASKS = ("extract", "tag", "draft")
_BASE = {
    ("extract", "gpt-4o-mini"): 0.80, ("extract", "gpt-4o"): 0.90, ("extract", "gpt-4.1-nano"): 0.55,
    ("tag", "gpt-4o-mini"): 0.85, ("tag", "gpt-4o"): 0.86, ("tag", "gpt-4.1-nano"): 0.80,
    ("draft", "gpt-4o-mini"): 0.60, ("draft", "gpt-4o"): 0.92, ("draft", "gpt-4.1-nano"): 0.40,
}


def messages(i: int) -> list[dict[str, str]]:
    task = TASKS[i % 3]
    return [{"role": "user", "content": f"{task}: request {i} " + "word " * (i % 17)}]


def scorer(messages: list[dict[str, Any]], response: Any, model: str) -> float:
    text = messages[-1]["content"]
    task = text.split(":", 1)[0]
    jitter = int(hashlib.sha256(f"{text}|{model}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF - 0.5
    return min(1.0, max(0.0, _BASE[(task, model)] + 0.2 * jitter))
