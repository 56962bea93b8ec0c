"""Secrets the router sends, found by where they sit rather than by their shape, and removed from text.

A value is a secret when the router sends it as a credential: any parameter whose name says so
(api_key, client_secret, aws_session_token, ...), any value marked with pydantic's ``SecretStr``, every
header value (``extra_headers``, ``headers``), the user:password part and credential-named query values
of a URL (``api_base``), and the values of provider credentials in the environment (``*_API_KEY``,
``*_TOKEN``, ... : the variables litellm reads). :class:`SecretRegistry` holds them, with the forms a
provider may echo them in (URL-encoded, base64, JSON-escaped, without a ``Bearer`` prefix), and
:meth:`SecretRegistry.scrub` removes every run of 8 or more characters of any of them, in any letter
case: an echo of part of a key is caught too. Key-shaped tokens (``sk-...``, ``AKIA...``) go as well.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

__all__ = ["SecretRegistry", "is_secret_name", "mask_params", "scrub", "scrub_exception", "secret_values"]

MAX_CHARS = 500  # stored error text is cut to this length (after scrubbing)
_FRAGMENT = 8  # a run this long of a registered secret is removed wherever it appears
_MIN_SECRET = 4  # shorter values are not secrets worth scrubbing ("", "1", "yes")
_MAX_SCAN = 200_000  # characters of a text looked at; the rest is dropped (it would be cut anyway)

# A parameter name is a credential's when one of its words is one of these ("x_api_key", "clientSecret",
# "aws_session_token"), unless it counts or prices something ("max_tokens", "input_cost_per_token").
_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "passphrase", "credential", "credentials",
     "auth", "authorization", "cookie", "signature", "sig", "bearer", "jwt", "sas", "creds"}
)
_COUNTING_WORDS = frozenset({"tokens", "cost", "per", "max", "min", "num", "count", "limit"})
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# Parameters whose every value is sent as an HTTP header.
_HEADER_PARAMS = frozenset({"extra_headers", "headers", "default_headers"})
# Environment variables that hold provider credentials (OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, ...).
_SECRET_ENV = re.compile(r"(?i)(_API_KEY|_KEY$|_TOKEN|_SECRET|SECRET_|_PASSWORD|_CREDENTIALS?$|ACCESS_KEY|_AUTH)")
_SCHEMES = re.compile(r"(?i)^(bearer|basic|token|digest|apikey|key)\s+")

_KEY_SHAPED = re.compile(
    "|".join(
        (
            r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}",  # OpenAI / Anthropic style (sk-..., sk-ant-...)
            r"\bAIza[0-9A-Za-z_\-]{20,}",  # Google
            r"\b(?:AKIA|ASIA)[0-9A-Z]{12,}",  # AWS access key ids
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",  # GitHub
            r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
            r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*",  # JWT
            r"\b(?i:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}",
        )
    )
)
_KEY_VALUE = re.compile(
    r"(?i)((?:api[_-]?key|x-api-key|access[_-]?token|token|secret|password|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',}]{4,}"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")


def is_secret_name(name: str) -> bool:
    return _is_secret_name(name)


@lru_cache(maxsize=4096)
def _is_secret_name(name: str) -> bool:
    words = {w.lower() for w in _WORD.findall(name)}
    return bool(words & _SECRET_WORDS) and not words & _COUNTING_WORDS


def _plain(value: Any) -> Any:
    getter = getattr(value, "get_secret_value", None)  # pydantic SecretStr / SecretBytes
    return getter() if callable(getter) else value


def _is_marked(value: Any) -> bool:
    return callable(getattr(value, "get_secret_value", None))


def _leaves(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string (or number) inside ``value``; a JSON string is opened too (vertex credentials)."""
    value = _plain(value)
    if depth > 8:
        return
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _leaves(item, depth + 1)
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        yield text
        if isinstance(value, str) and text[:1] in "{[" and len(text) < 1_000_000:
            try:
                yield from _leaves(json.loads(text), depth + 1)
            except ValueError:
                pass


def _url_secrets(text: str) -> Iterator[str]:
    """The user, password and credential-named query values of a URL."""
    if "://" not in text:
        return
    try:
        parts = urlsplit(text)
    except ValueError:
        return
    if parts.username:
        yield unquote(parts.username)
    if parts.password:
        yield unquote(parts.password)
        yield f"{unquote(parts.username or '')}:{unquote(parts.password)}"  # as HTTP Basic auth sends it
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if _is_secret_name(name):
            yield value


def secret_values(params: Mapping[str, Any], secret_names: Iterable[str] = ()) -> list[str]:
    """Every credential in litellm call parameters: credential-named parameters, ``SecretStr`` values,
    header values, URL userinfo and the parameters named in ``secret_names``."""
    named = set(secret_names)
    found: list[str] = []
    for key, value in params.items():
        key = str(key)
        if key in named or _is_secret_name(key) or key in _HEADER_PARAMS or _is_marked(value):
            found.extend(_leaves(value))
        elif isinstance(value, str):
            if "://" in value:
                found.extend(_url_secrets(value))
        elif isinstance(value, Mapping):  # a nested mapping: its credential-named entries and URLs
            found.extend(secret_values(value))
        elif isinstance(value, (list, tuple)):
            found.extend(u for item in value if isinstance(item, str) for u in _url_secrets(item))
    return [s for s in found if len(s) >= _MIN_SECRET]


def mask_params(params: Mapping[str, Any], secret_names: Iterable[str] = ()) -> dict[str, Any]:
    """``params`` safe to print: credentials as ``***``, header values masked, URL userinfo removed."""
    named = set(secret_names)
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = str(key)
        if value is None or value == "":
            out[key] = value
        elif name in named or _is_secret_name(name) or _is_marked(value):
            out[key] = "***"
        elif name in _HEADER_PARAMS and isinstance(value, Mapping):
            out[key] = {k: "***" for k in value}
        elif isinstance(value, Mapping):
            out[key] = mask_params(value)
        elif isinstance(value, str):
            out[key] = _mask_url(value)
        else:
            out[key] = value
    return out


def _mask_url(text: str) -> str:
    if "://" not in text:
        return text
    masked = _URL_USERINFO.sub(r"\1***@", text)
    try:
        query = urlsplit(masked).query
    except ValueError:
        return masked
    for name, value in parse_qsl(query):
        if _is_secret_name(name) and value:
            masked = masked.replace(quote_plus(value), "***").replace(value, "***")
    return masked


def _forms(secret: str) -> set[str]:
    """The ways a provider may echo a secret: as sent, without an auth scheme, encoded."""
    forms = {secret}
    bare = _SCHEMES.sub("", secret).strip()
    forms.add(bare)
    if bare != secret and secret.lower().startswith("basic"):
        try:
            forms.update(base64.b64decode(bare, validate=True).decode("utf-8", "replace").split(":", 1))
        except ValueError:
            pass
    for form in list(forms):
        forms.add(quote(form, safe=""))
        forms.add(quote_plus(form))
        forms.add(json.dumps(form)[1:-1])
        forms.add(base64.b64encode(form.encode()).decode().rstrip("="))
        forms.add(base64.urlsafe_b64encode(form.encode()).decode().rstrip("="))
    return {f for f in forms if len(f) >= _MIN_SECRET}


@lru_cache(maxsize=256)
def _matcher(secrets: frozenset[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Lower-cased 8-character fragments of every form of every secret, and the shorter forms whole."""
    fragments: set[str] = set()
    short: set[str] = set()
    for secret in secrets:
        for form in _forms(secret):
            low = form.lower()
            if len(low) < _FRAGMENT:
                short.add(low)
            else:
                fragments.update(low[i : i + _FRAGMENT] for i in range(len(low) - _FRAGMENT + 1))
    return frozenset(fragments), tuple(sorted(short, key=len, reverse=True))


def _remove(text: str, secrets: frozenset[str]) -> str:
    if not secrets:
        return text
    fragments, short = _matcher(secrets)
    low = text.lower()
    hidden = bytearray(len(text))
    if fragments:
        k = _FRAGMENT
        for i in range(len(low) - k + 1):
            if low[i : i + k] in fragments:
                hidden[i : i + k] = b"\x01" * k
    for form in short:
        start = low.find(form)
        while start >= 0:
            hidden[start : start + len(form)] = b"\x01" * len(form)
            start = low.find(form, start + 1)
    if not any(hidden):
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append("***")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _environment_secrets() -> frozenset[str]:
    return frozenset(
        value for name, value in os.environ.items() if len(value) >= _FRAGMENT and _SECRET_ENV.search(name)
    )


def scrub(text: str, secrets: Iterable[str] = (), *, environment: bool = True, limit: int | None = MAX_CHARS) -> str:
    """``text`` without any run of 8+ characters of a known secret (or of a provider credential in
    the environment), without key-shaped tokens, cut to 500 characters."""
    text = text[:_MAX_SCAN]
    known = frozenset(s for s in secrets if s and len(s) >= _MIN_SECRET)
    if environment:
        known |= _environment_secrets()
    text = _remove(text, known)
    text = _KEY_SHAPED.sub("***", text)
    text = _KEY_VALUE.sub(r"\1***", text)
    text = _URL_USERINFO.sub(r"\1***@", text)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


class SecretRegistry:
    """The secrets one router sends: registered from its models' parameters and from each call's own,
    then removed from every text it stores or raises (``scrub``)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset(s for s in secrets if len(s) >= _MIN_SECRET)

    def add(self, *values: str) -> None:
        new = {str(v) for v in values if v is not None and len(str(v)) >= _MIN_SECRET}
        if not new <= self._secrets:
            with self._lock:
                self._secrets = self._secrets | new

    def add_params(self, params: Mapping[str, Any], secret_names: Iterable[str] = ()) -> None:
        self.add(*secret_values(params, secret_names))

    @property
    def values(self) -> frozenset[str]:
        return self._secrets

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:  # never the values
        return f"SecretRegistry({len(self._secrets)} secrets)"

    def scrub(self, text: str, extra: Iterable[str] = (), limit: int | None = MAX_CHARS) -> str:
        return scrub(text, self._secrets.union(extra), limit=limit)

    def scrub_exception(self, exc: BaseException, extra: Iterable[str] = ()) -> BaseException:
        return scrub_exception(exc, self._secrets.union(extra))


def scrub_exception(exc: BaseException, secrets: Iterable[str] = ()) -> BaseException:
    """Scrub an exception about to reach the caller, in place: its arguments, its ``message`` and the
    exceptions chained to it (what a traceback prints)."""
    known = frozenset(secrets)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        try:
            current.args = tuple(scrub(a, known, limit=None) if isinstance(a, str) else a for a in current.args)
            message = getattr(current, "message", None)
            if isinstance(message, str):
                current.message = scrub(message, known, limit=None)  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
        current = current.__cause__ or current.__context__
    return exc
