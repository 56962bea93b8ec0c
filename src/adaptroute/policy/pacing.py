"""Spend budgets: paced over their period, with a hard cap.

A budget is a constraint on top of the policy's predictions, like a quality bar (policy.constraints):
it adds ``m / unit`` to the cost weight of the decisions it covers, where ``unit`` is what one request
may spend at the budget's pace and ``m`` is a multiplier that grows exponentially with how far spending
is ahead of the pace (``m = m0 * exp(step * ahead / unit)``, ``ahead`` = spent - the pace's allowance so
far). Behind the pace ``m`` fades to nothing and the budget does not shape decisions; ahead of it,
cheaper models win more and more often, so a burst is spread over the period instead of spending the
budget by noon. The hard cap: a model whose expected cost exceeds what is left of the period's budget is
not eligible. Clock-agnostic: callers pass ``now`` (seconds) so tests can drive time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["Budget", "Pacer"]

_PERIODS = {"hour": 3600.0, "day": 86400.0}
# Pacing gain (log units of the multiplier per request's worth of spend ahead of pace) and start; chosen
# on synthetic markets and RouterBench together (experiments/controls.py).
PACE_STEP = 0.3
PACE_START = 1.0
_SPAN = math.log(1e6)


@dataclass(frozen=True, slots=True)
class Budget:
    """``usd`` per ``per`` ("day" or "hour", calendar periods in UTC) or per ``per_requests`` requests,
    optionally only for one ``task`` and/or one ``tenant`` (else for all traffic)."""

    usd: float
    per: str | None = None
    per_requests: int | None = None
    task: str | None = None
    tenant: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.usd, bool) or not isinstance(self.usd, (int, float)) or not math.isfinite(self.usd) or self.usd <= 0:
            raise ConfigError(f"Budget: usd must be a finite number > 0, got {self.usd!r}")
        if (self.per is None) == (self.per_requests is None):
            raise ConfigError("Budget: give exactly one of per='day'|'hour' or per_requests=N")
        if self.per is not None and self.per not in _PERIODS:
            raise ConfigError(f"Budget: per must be 'day' or 'hour', got {self.per!r}")
        if self.per_requests is not None and (isinstance(self.per_requests, bool) or not isinstance(self.per_requests, int)
                                              or self.per_requests < 1):
            raise ConfigError(f"Budget: per_requests must be an integer >= 1, got {self.per_requests!r}")
        for name in ("task", "tenant"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
                raise ConfigError(f"Budget: {name} must be a non-empty string of at most 200 characters, got {value!r}")

    @property
    def period_s(self) -> float | None:
        return None if self.per is None else _PERIODS[self.per]

    def covers(self, task: str, tenant: str | None) -> bool:
        return (self.task is None or self.task == task) and (self.tenant is None or self.tenant == tenant)

    def describe(self) -> str:
        scope = "".join(f" {k}={v}" for k, v in (("task", self.task), ("tenant", self.tenant)) if v)
        per = f"per {self.per}" if self.per else f"per {self.per_requests} requests"
        return f"${self.usd:g} {per}{scope}"


class Pacer:
    """One budget's ledger and pacing multiplier. Not thread-safe on its own (the router locks)."""

    def __init__(self, budget: Budget, *, step: float = PACE_STEP, start: float = PACE_START) -> None:
        self.budget = budget
        self.step, self.start = float(step), float(start)
        self._period_start: float | None = None
        self.spent = 0.0  # in the current period
        self.requests = 0  # decided in the current period
        self._spend_total, self._requests_total = 0.0, 0  # over every period: the typical request's cost

    # -- the period -------------------------------------------------------------------------------
    def _roll(self, now: float) -> None:
        period = self.budget.period_s
        if period is None:
            return
        start = math.floor(now / period) * period
        if self._period_start is None or start > self._period_start:
            self._period_start, self.spent, self.requests = start, 0.0, 0

    def allowance(self, now: float) -> float:
        """What the pace allows to have been spent by now in this period."""
        self._roll(now)
        b = self.budget
        if b.per_requests is not None:  # a rate: usd for every per_requests requests, however many
            return b.usd * self.requests / b.per_requests
        assert self._period_start is not None and b.period_s is not None
        return b.usd * min(max(now - self._period_start, 0.0) / b.period_s, 1.0)

    def remaining(self, now: float) -> float:
        self._roll(now)
        if self.budget.per_requests is not None:
            # each block of N requests (the current one included) brings usd more
            blocks = max(math.ceil(self.requests / self.budget.per_requests), 1)
            return self.budget.usd * blocks - self.spent
        return self.budget.usd - self.spent

    def unit(self) -> float:
        """What one request may spend at the pace: usd / N, or the typical request's cost so far
        (a thousandth of the budget before the first)."""
        b = self.budget
        if b.per_requests is not None:
            return b.usd / b.per_requests
        if self._requests_total and self._spend_total > 0:
            return self._spend_total / self._requests_total
        return b.usd / 1000.0

    # -- deciding ---------------------------------------------------------------------------------
    def multiplier(self, now: float) -> float:
        """m: how much one request's budget counts, in quality points (see the module text)."""
        ahead = (self.spent - self.allowance(now)) / self.unit()
        exponent = min(max(self.step * ahead, -_SPAN), _SPAN)
        return self.start * math.exp(exponent)

    def cost_weight(self, now: float) -> float:
        """What this budget adds to the cost weight (quality points per USD)."""
        return self.multiplier(now) / self.unit()

    def affordable(self, expected_cost: np.ndarray, now: float) -> np.ndarray:
        """The hard cap: which models' expected costs what is left can pay for."""
        return np.asarray(expected_cost) <= self.remaining(now)

    def shaped(self, now: float) -> bool:
        """Whether the budget is ahead of its pace (it then shapes decisions noticeably)."""
        return self.spent > self.allowance(now)

    # -- spending ---------------------------------------------------------------------------------
    def decided(self, now: float) -> None:
        self._roll(now)
        self.requests += 1

    def charge(self, cost_usd: float, now: float) -> None:
        self._roll(now)
        self.spent += float(cost_usd)
        self._spend_total += float(cost_usd)
        self._requests_total += 1

    def state(self, now: float) -> dict[str, float]:
        """What the record and the log keep about this budget at a decision."""
        return {"spent_usd": self.spent, "allowance_usd": self.allowance(now), "remaining_usd": self.remaining(now),
                "multiplier": self.multiplier(now)}
