"""What the fake server does with a request (Behavior) and what it saw (RecordedRequest)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Behavior", "RecordedRequest"]

_CONTEXT_MESSAGE = (
    "This model's maximum context length is 16385 tokens. However, your messages resulted in 40000 tokens. "
    "Please reduce the length of the messages."
)


@dataclass(frozen=True)
class Behavior:
    """What the server does with one request. Build them with the class methods."""

    kind: str = "ok"  # ok | error | drop | malformed | stream_break | stream_malformed
    delay_s: float = 0.0  # wait this long before answering (a slow model)
    content: str | None = None  # the answer (default: "answer from <model>")
    prompt_tokens: int = 12
    completion_tokens: int = 5
    status: int = 200
    error_type: str = "server_error"
    error_code: str | None = None
    # "{api_key}": the request's bearer token, "{api_key_head}": its first 12 characters, "{headers}": every header
    error_message: str = "fake failure"
    retry_after: str | None = None
    after_first_token: bool = False  # stream_break: break after the first content chunk (else before)
    chunk_delay_s: float = 0.0  # streams: pause between chunks

    @classmethod
    def ok(cls, content: str | None = None, *, prompt_tokens: int = 12, completion_tokens: int = 5,
           delay_s: float = 0.0, chunk_delay_s: float = 0.0) -> Behavior:
        return cls("ok", delay_s=delay_s, content=content, prompt_tokens=prompt_tokens,
                   completion_tokens=completion_tokens, chunk_delay_s=chunk_delay_s)

    @classmethod
    def slow(cls, delay_s: float, content: str | None = None) -> Behavior:
        return cls("ok", delay_s=delay_s, content=content)

    @classmethod
    def error(cls, status: int, message: str = "fake failure", *, error_type: str = "server_error",
              code: str | None = None, retry_after: float | str | None = None, delay_s: float = 0.0) -> Behavior:
        return cls("error", status=status, error_message=message, error_type=error_type, error_code=code,
                   retry_after=None if retry_after is None else str(retry_after), delay_s=delay_s)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None) -> Behavior:
        return cls.error(429, "Rate limit reached for requests", error_type="requests",
                         code="rate_limit_exceeded", retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Behavior:
        return cls.error(status, f"The server had an error while processing your request ({status})")

    @classmethod
    def context_window(cls) -> Behavior:
        """OpenAI's 400 context_length_exceeded (litellm raises ContextWindowExceededError)."""
        return cls.error(400, _CONTEXT_MESSAGE, error_type="invalid_request_error", code="context_length_exceeded")

    @classmethod
    def echo_key(cls, status: int = 401) -> Behavior:
        """An error whose body repeats the API key the request carried (as careless providers do)."""
        return cls.error(status, "Incorrect API key provided: {api_key}. Check the key {api_key} and retry.",
                         error_type="invalid_request_error", code="invalid_api_key")

    @classmethod
    def echo_headers(cls, status: int = 401) -> Behavior:
        """An error whose body repeats every header of the request, values included (a debugging proxy)."""
        return cls.error(status, "Unauthorized. Request headers were: {headers}", error_type="invalid_request_error",
                         code="invalid_api_key")

    @classmethod
    def stream_malformed(cls) -> Behavior:
        """A 200 stream whose events are not JSON."""
        return cls("stream_malformed")

    @classmethod
    def drop(cls, delay_s: float = 0.0) -> Behavior:
        """Read the request, then close the connection without a response."""
        return cls("drop", delay_s=delay_s)

    @classmethod
    def malformed(cls) -> Behavior:
        """200 with a Content-Type of JSON and a body that is not JSON."""
        return cls("malformed")

    @classmethod
    def stream_break(cls, *, after_first_token: bool, content: str | None = None) -> Behavior:
        """A stream that sends its headers and then breaks, before or after its first content chunk.
        A request without ``stream: true`` sees a dropped connection."""
        return cls("stream_break", after_first_token=after_first_token, content=content)

    def with_(self, **changes: Any) -> Behavior:
        """A copy with some fields changed, e.g. ``Behavior.ok().with_(delay_s=0.2)``."""
        return replace(self, **changes)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    model: str | None
    ts: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None
