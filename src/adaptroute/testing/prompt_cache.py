"""The fake server's prompt cache: a prompt that repeats the start of an earlier one (for the same model)
reports that shared prefix as cached tokens, in usage.prompt_tokens_details.cached_tokens, the way
OpenAI-compatible providers report their prompt caching. Tokens are counted as 4 characters each."""

from __future__ import annotations

import json
import threading
from typing import Any

__all__ = ["PromptCache"]

_CHARS_PER_TOKEN = 4


def _prompt(payload: dict[str, Any]) -> str:
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return ""
    parts = []
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            parts.append(f"{message.get('role')}:{content if isinstance(content, str) else json.dumps(content)}\n")
    return "".join(parts)


def _shared(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PromptCache:
    """``min_tokens``: shorter shared prefixes are not cached (providers cache from 1,024 tokens; the
    default here is small so tests stay small). ``keep``: prompts remembered per model."""

    def __init__(self, min_tokens: int = 32, keep: int = 256) -> None:
        self.min_tokens = min_tokens
        self.keep = keep
        self._seen: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def cached_tokens(self, model: str, payload: dict[str, Any], prompt_tokens: int) -> int:
        """Cached tokens for this request (and remember its prompt for the next ones)."""
        text = _prompt(payload)
        with self._lock:
            seen = self._seen.setdefault(model, [])
            longest = max((_shared(text, old) for old in seen), default=0)
            seen.append(text)
            del seen[: max(0, len(seen) - self.keep)]
        tokens = longest // _CHARS_PER_TOKEN
        return min(tokens, prompt_tokens) if tokens >= self.min_tokens else 0

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens}}
