"""Test helpers: a local OpenAI-compatible server for the real HTTP path (stdlib only, no network)."""

from .fake_openai import Behavior, FakeOpenAI, RecordedRequest, fake_openai

__all__ = ["Behavior", "FakeOpenAI", "RecordedRequest", "fake_openai"]
