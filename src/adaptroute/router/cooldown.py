"""Models that keep failing rest for a while: a 429 at once, 5xx and timeouts after several in a row
(both honouring Retry-After when the provider sends one, up to ``max_cooldown_s``: a provider's
"Retry-After: 1000000000" must not bench a model for 31 years). A model comes back by itself when its
time is up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from .failures import Failure

__all__ = ["Cooldowns"]


class Cooldowns:
    def __init__(self, cooldown_s: float, after_failures: int, clock: Callable[[], float] = time.monotonic,
                 max_cooldown_s: float = 300.0) -> None:
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.after_failures = after_failures
        self._clock = clock
        self._until: dict[str, float] = {}
        self._streak: dict[str, int] = {}
        self._lock = threading.Lock()

    def available(self, models: Sequence[str]) -> list[str]:
        if not self._until:
            return list(models)
        now = self._clock()
        return [m for m in models if self._until.get(m, 0.0) <= now]

    def cooling(self) -> dict[str, float]:
        """Seconds left for every model that is cooling down."""
        now = self._clock()
        with self._lock:  # other threads may be adding entries
            return {m: until - now for m, until in self._until.items() if until > now}

    def success(self, model: str) -> None:
        if model in self._streak or model in self._until:
            with self._lock:
                self._streak.pop(model, None)

    def failure(self, model: str, failure: Failure) -> None:
        if not failure.counts_against_model:
            return
        with self._lock:
            streak = self._streak.get(model, 0) + 1
            self._streak[model] = streak
            if failure.rate_limited:
                rest = failure.retry_after_s if failure.retry_after_s is not None else self.cooldown_s
            elif failure.retryable and streak >= self.after_failures:
                rest = failure.retry_after_s if failure.retry_after_s is not None else self.cooldown_s
            else:
                return
            rest = min(rest, self.max_cooldown_s)
            self._until[model] = max(self._until.get(model, 0.0), self._clock() + rest)
            self._streak[model] = 0
