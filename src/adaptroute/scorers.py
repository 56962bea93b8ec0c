"""Built-in quality scorers: acceptance checks (regex, JSON schema) and an LLM judge through litellm.

A scorer is any callable ``scorer(messages, response) -> float in [0, 1] or bool``. Scorers with an
``ascore`` coroutine method are awaited by ``Router.acomplete``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigError

__all__ = ["JSONSchemaScorer", "LLMJudge", "RegexScorer", "Scorer", "response_text"]


@runtime_checkable
class Scorer(Protocol):
    def __call__(self, messages: Sequence[dict[str, Any]], response: Any) -> float | bool: ...


def response_text(response: Any) -> str:
    """The assistant text of a litellm (OpenAI-shaped) response, or '' if it has none."""
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        try:
            content = response["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return ""
    return content if isinstance(content, str) else ""


class RegexScorer:
    """1.0 when the response matches ``pattern`` (re.search; ``fullmatch=True`` for the whole text)."""

    def __init__(self, pattern: str, *, flags: int = 0, fullmatch: bool = False) -> None:
        try:
            self.pattern = re.compile(pattern, flags)
        except re.error as exc:
            raise ConfigError(f"invalid regex {pattern!r}: {exc}") from None
        self.fullmatch = fullmatch

    def __call__(self, messages: Sequence[dict[str, Any]], response: Any) -> float:
        text = response_text(response)
        match = self.pattern.fullmatch(text.strip()) if self.fullmatch else self.pattern.search(text)
        return 1.0 if match else 0.0


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class JSONSchemaScorer:
    """1.0 when the response is JSON (optionally in a ``` fence) that validates against ``schema``."""

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema  # installed with litellm

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"invalid JSON schema: {exc.message}") from None
        self._validator = jsonschema.Draft202012Validator(schema)

    def __call__(self, messages: Sequence[dict[str, Any]], response: Any) -> float:
        text = response_text(response)
        fenced = _FENCE.match(text)
        try:
            value = json.loads(fenced.group(1) if fenced else text)
        except (json.JSONDecodeError, ValueError):
            return 0.0
        return 1.0 if self._validator.is_valid(value) else 0.0


_JUDGE_PROMPT = (
    "You grade an AI assistant's answer. {rubric}\n\nConversation:\n{conversation}\n\nAnswer to grade:\n"
    "{answer}\n\nReply with one integer from 0 (useless) to 10 (perfect) and nothing else."
)
_NUMBER = re.compile(r"\b(10|[0-9])(?:\.\d+)?\b")


class LLMJudge:
    """Asks a judge model (any litellm model) to grade the answer from 0 to 10; returns score / 10.

    An unparseable verdict scores 0. Extra keyword arguments go to litellm (api_base, timeout, ...).
    """

    def __init__(self, model: str, rubric: str = "Judge correctness and helpfulness.", **litellm_kwargs: Any) -> None:
        self.model = model
        self.rubric = rubric
        self.kwargs = {"timeout": 30.0, "max_retries": 0, **litellm_kwargs}

    def _prompt(self, messages: Sequence[dict[str, Any]], response: Any) -> list[dict[str, str]]:
        conversation = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)
        text = _JUDGE_PROMPT.format(rubric=self.rubric, conversation=conversation, answer=response_text(response))
        return [{"role": "user", "content": text}]

    @staticmethod
    def _parse(verdict: Any) -> float:
        match = _NUMBER.search(response_text(verdict))
        return min(10.0, float(match.group(1))) / 10.0 if match else 0.0

    def __call__(self, messages: Sequence[dict[str, Any]], response: Any) -> float:
        import litellm

        return self._parse(litellm.completion(model=self.model, messages=self._prompt(messages, response), **self.kwargs))

    async def ascore(self, messages: Sequence[dict[str, Any]], response: Any) -> float:
        import litellm

        verdict = await litellm.acompletion(model=self.model, messages=self._prompt(messages, response), **self.kwargs)
        return self._parse(verdict)
