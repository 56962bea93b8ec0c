"""The demo's simulated provider, plugged into litellm through its custom-provider interface.

The Router calls litellm as it would call any provider (``litellm_model="adaptroute-demo/<model>"``);
litellm hands the call to this handler, which waits the call's simulated latency and answers with the
prompt's token counts. Each call's latency is drawn log-normally around the model's median (real
providers' latencies vary from call to call; a fixed delay would make the smallest hiccup of the
machine look like a change of the model), seeded per (prompt, model) so a prompt always takes a model
the same time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["LATENCY_SIGMA", "PROVIDER", "SimulatedProvider", "simulated_provider"]

PROVIDER = "adaptroute-demo"
LATENCY_SIGMA = 0.25  # log-normal spread of a call's latency around the model's median (p95 ~ 1.5x median)


class SimulatedProvider:
    """Answers ``messages`` whose last text is one of ``prompts`` (text -> (index, tokens in, tokens
    out)), as ``model`` would: after its simulated latency, with the prompt's token counts."""

    def __init__(self, prompts: Mapping[str, tuple[int, int, int]], median_s: Mapping[str, float], seed: int) -> None:
        self.prompts = prompts
        self.median_s = median_s
        self.index = {name: i for i, name in enumerate(median_s)}
        self.seed = seed

    def latency_s(self, prompt_index: int, model: str) -> float:
        z = np.random.default_rng([self.seed, prompt_index, self.index[model]]).standard_normal()
        return float(self.median_s[model] * math.exp(LATENCY_SIGMA * z))

    async def acompletion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        from litellm import ModelResponse
        from litellm.types.utils import Choices, Message, Usage

        index, tokens_in, tokens_out = self.prompts[messages[-1]["content"]]
        await asyncio.sleep(self.latency_s(index, model))
        response = ModelResponse(model=model, choices=[Choices(index=0, finish_reason="stop",
                                                               message=Message(role="assistant", content="an answer"))])
        response.usage = Usage(prompt_tokens=tokens_in, completion_tokens=tokens_out, total_tokens=tokens_in + tokens_out)
        return response


@contextmanager
def simulated_provider(handler: SimulatedProvider) -> Iterator[None]:
    """Route litellm's ``adaptroute-demo/...`` models to ``handler`` while the block runs."""
    import litellm
    from litellm import CustomLLM

    class _Handler(CustomLLM):
        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return await handler.acompletion(model, messages)

    before = list(getattr(litellm, "custom_provider_map", []) or [])
    litellm.custom_provider_map = [m for m in before if m.get("provider") != PROVIDER] + [
        {"provider": PROVIDER, "custom_handler": _Handler()}]
    try:
        yield
    finally:
        litellm.custom_provider_map = before
