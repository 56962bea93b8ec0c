"""A routed stream hands the caller exactly the chunks litellm gives for the request they made: the
usage chunk (``choices=[]``) the router asks for to price the call appears only if the caller asked
for it too, so the loop every OpenAI user writes (``chunk.choices[0].delta.content``) just works."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adaptroute import Router
from adaptroute.router.calls import litellm
from adaptroute.testing import Behavior, fake_openai

MESSAGES = [{"role": "user", "content": "Say something streaming"}]
TEXT = "one two three four five"
_VOLATILE = {"id", "created", "system_fingerprint"}  # differ between any two calls


def _shape(chunk: Any) -> dict[str, Any]:
    return {k: v for k, v in chunk.model_dump().items() if k not in _VOLATILE}


def _direct(**kwargs: Any) -> list[dict[str, Any]]:
    return [_shape(c) for c in litellm().completion(messages=MESSAGES, stream=True, **kwargs)]


@pytest.mark.parametrize("options", [None, {"include_usage": True}, {"include_usage": False}])
def test_mock_stream_equals_litellms_own(options: dict[str, bool] | None) -> None:
    extra = {} if options is None else {"stream_options": options}
    expected = _direct(model="gpt-4o-mini", mock_response=TEXT, **extra)
    with Router(["gpt-4o-mini"]) as router:
        stream = router.complete(MESSAGES, task="chat", mock_response=TEXT, stream=True, **extra)
        got = [_shape(c) for c in stream]
        record = stream.adaptroute
    assert got == expected
    assert record.attempts[0].tokens_out > 0 and record.cost_usd > 0  # priced from the usage the router asked for


def test_the_usual_openai_loop_reads_every_chunk() -> None:
    with Router(["gpt-4o-mini"]) as router:
        stream = router.complete(MESSAGES, task="chat", mock_response=TEXT, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)  # IndexError if choices=[]
    assert text == TEXT


@pytest.mark.parametrize("include_usage", [False, True])
def test_http_stream_equals_litellms_own(include_usage: bool) -> None:
    with fake_openai() as server:
        server.set("m", Behavior.ok(TEXT, prompt_tokens=9, completion_tokens=5))
        spec = server.spec("m")
        extra = {"stream_options": {"include_usage": True}} if include_usage else {}
        expected = _direct(model=spec.target, api_base=server.base_url, api_key="sk-fake-test-key-0000", **extra)
        with Router([spec]) as router:
            stream = router.complete(MESSAGES, task="chat", stream=True, **extra)
            got = [_shape(c) for c in stream]
            record = stream.adaptroute

        async def read_async() -> list[dict[str, Any]]:
            with Router([spec]) as arouter:
                astream = await arouter.acomplete(MESSAGES, task="chat", stream=True, **extra)
                return [_shape(c) async for c in astream]

        got_async = asyncio.run(read_async())
        sent = server.requests("m")
    assert got == expected and got_async == expected
    assert all(r.json["stream_options"]["include_usage"] for r in sent[1:])  # the router still asks for usage
    assert (record.attempts[0].tokens_in, record.attempts[0].tokens_out) == (9, 5)
