"""Remove secrets from text before it is stored or printed (provider errors can echo API keys)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["scrub"]

_KEY_SHAPED = re.compile(
    "|".join(
        (
            r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}",  # OpenAI / Anthropic style (sk-..., sk-ant-...)
            r"\bAIza[0-9A-Za-z_\-]{20,}",  # Google
            r"\b(?:AKIA|ASIA)[0-9A-Z]{12,}",  # AWS access key ids
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",  # GitHub
            r"\b(?i:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}",
        )
    )
)
_KEY_VALUE = re.compile(
    r"(?i)((?:api[_-]?key|x-api-key|access[_-]?token|token|secret|password|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',}]{4,}"
)
MAX_CHARS = 500


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and key-shaped token replaced by ***, cut to 500 characters."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _KEY_SHAPED.sub("***", text)
    text = _KEY_VALUE.sub(r"\1***", text)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 3] + "..."
