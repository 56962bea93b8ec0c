"""Per-task state of a quality bar: each model's quality on the task, and the bar's price.

What a bar constrains is the task's *mean* quality, so the rule reads each model's quality on the task
from the task's own scored outcomes: a beta posterior per (task, model), whose prior sits at the
model's mean over every task plus the task's offset (how far the task's outcomes sit from their models'
overall means), worth ``prior_n`` outcomes. A model tried elsewhere starts where it stands there, moved
by how hard this task is; one never tried starts at the field's mean. (The policy's own per-prompt
predictions, ``estimate="prompt"``, were measured too: on hashed prompt features they are far noisier
than the task's counts, and the bar paid for the noise; experiments/results/controls.md.)

The rule (``rule="price"``, policy.bar_dual) prices quality: the cheapest-mix frontier's slope at the
bar, on estimates half a posterior sd optimistic (a cheap model that may pass keeps the price low
enough to be tried), times exp(-gain * surplus), the task's realised quality minus the bar summed over
its scored requests (dual ascent, bounded). ``rule="cheapest"`` and ``rule="mix"`` are the measured
alternatives (policy.bar_cheapest, policy.bar_mix), with the bar itself shifted by the surplus.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .bar_cheapest import BAR_CAP_Z, plausible_cheapest
from .bar_dual import frontier_price, priced_choice
from .bar_mix import cheapest_mix

if TYPE_CHECKING:
    from .constraints import QualityBar

__all__ = ["BarControl", "BarDecision", "RULES", "ESTIMATES"]

RULES = ("price", "cheapest", "mix")
ESTIMATES = ("task", "prompt")
# The price rule's constants, chosen on RouterBench and four synthetic markets together and checked on
# three markets not used to choose them (experiments/controls.py): the surplus moves the price by
# e^0.1 per quality point, at most 100x either way; the frontier uses estimates 0.5 sd optimistic.
PRICE_GAIN = 0.1
PRICE_MAX_LOG = math.log(100.0)
PRICE_Z = 0.5
PRIOR_N = 2.0  # the task prior's weight, in outcomes
# The shifted-bar rules' constants: 100 requests 0.1 above the bar lower it by 0.1 (the most it moves).
BAR_GAIN = 0.01
BAR_MAX_SHIFT = 0.1
# Quality draws at the full posterior width: a model barely tried on a task keeps the spread it has.
BAR_WIDTH: float | None = 1.0


@dataclass(frozen=True, slots=True)
class BarDecision:
    """What a bar did to one decision: logged with it, so replay and tune can evaluate other bars."""

    bar: float  # the absolute bar this request had to meet (a relative bar already resolved)
    effective_bar: float  # the bar the rule aimed at (after a shift; the bar itself under the price rule)
    unreachable: bool  # no eligible model is expected to meet the bar, even 2 sd up: the best one is sought
    none_clear: float  # the probability that the request sought the best model (no model was priced to meet it)
    price: float = math.nan  # the price rule's expense per quality point (NaN for the other rules)


class BarControl:
    """Per-task bar state for a QualityBar (thread-safe): task quality counts and the surplus."""

    def __init__(
        self, bar: QualityBar, *, rule: str = "price", estimate: str = "task", width: float | None = BAR_WIDTH,
        gain: float | None = None, max_shift: float | None = None, price_z: float = PRICE_Z,
        prior_n: float = PRIOR_N, cap_z: float | None = BAR_CAP_Z,
    ) -> None:
        """``rule``: "price", "cheapest" or "mix"; ``estimate``: "task" (the task's counts) or "prompt"
        (the policy's prediction for the request); ``width``: the quality draws' posterior width (None:
        the policy's own); ``gain``/``max_shift``: how the surplus moves the price (log per quality
        point, largest log) or the shifted bar (bar points per quality point, largest shift);
        ``price_z``: the frontier's optimism in sd; ``prior_n``: the task prior's weight;
        ``cap_z``: where the cheapest rule's candidates stop."""
        if rule not in RULES:
            raise ConfigError(f"bar rule must be one of {RULES}, got {rule!r}")
        if estimate not in ESTIMATES:
            raise ConfigError(f"bar estimate must be one of {ESTIMATES}, got {estimate!r}")
        priced = rule == "price"
        gain = (PRICE_GAIN if priced else BAR_GAIN) if gain is None else gain
        max_shift = (PRICE_MAX_LOG if priced else BAR_MAX_SHIFT) if max_shift is None else max_shift
        if not gain >= 0 or not max_shift >= 0 or not prior_n > 0 or not price_z >= 0:
            raise ConfigError(f"bar gain, max_shift and price_z must be >= 0 and prior_n > 0, got {gain}, {max_shift}, {price_z}, {prior_n}")
        if width is not None and not width > 0:
            raise ConfigError(f"bar width must be > 0 (or None: the policy's own), got {width}")
        self.bar = bar
        self.rule, self.estimate, self.width = rule, estimate, width
        self.gain, self.max_shift = float(gain), float(max_shift)
        self.price_z, self.prior_n, self.cap_z = float(price_z), float(prior_n), cap_z
        self._stats: dict[str, dict[str, tuple[float, float]]] = {}  # task -> model -> (count, sum of quality)
        self._overall: dict[str, tuple[float, float]] = {}  # model -> (count, sum of quality), every task
        self._surplus: dict[str, float] = {}
        self._lock = threading.Lock()

    def applies(self, task: str) -> bool:
        return self.bar.for_task(task) is not None

    def _moved(self, task: str) -> float:
        with self._lock:
            surplus = self._surplus.get(task, 0.0)
        return min(max(self.gain * surplus, -self.max_shift), self.max_shift)

    def shift(self, task: str) -> float:
        """How far the task's effective bar sits below (negative: above) its bar (0 under the price rule)."""
        return 0.0 if self.rule == "price" else self._moved(task)

    def price_factor(self, task: str) -> float:
        """The price rule's multiplier on the frontier price: exp(-gain * surplus), bounded."""
        return math.exp(-self._moved(task)) if self.rule == "price" else 1.0

    def task_posterior(self, task: str, models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each model's mean quality on ``task`` and its posterior sd (see the module's docstring)."""
        with self._lock:
            overall, stats = self._overall, self._stats.get(task, {})
            n_all = sum(v[0] for v in overall.values())
            field = sum(v[1] for v in overall.values()) / n_all if n_all > 0 else 0.5
            own = {m: (v[1] + self.prior_n * field) / (v[0] + self.prior_n) for m, v in overall.items()}
            n_task = sum(v[0] for v in stats.values())
            residual = sum(v[1] - v[0] * own.get(m, field) for m, v in stats.items())
            offset = residual / (n_task + self.prior_n)
            mean, sd = np.empty(len(models)), np.empty(len(models))
            for i, model in enumerate(models):
                centre = min(max(own.get(model, field) + offset, 0.02), 0.98)
                n, total = stats.get(model, (0.0, 0.0))
                a = self.prior_n * centre + total
                b = self.prior_n * (1.0 - centre) + n - total
                mean[i] = a / (a + b)
                sd[i] = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
        return mean, sd

    def settled_factor(self, task: str, quality: np.ndarray, sd: np.ndarray, expense: np.ndarray, width: float) -> float:
        """The price factor at which the price rule's expected quality (by these estimates) meets the
        task's bar: where the online factor settles, for evaluating a bar without its history (replay).
        Bisection on the log factor within its bounds."""
        low, high = -self.max_shift, self.max_shift

        def expected(log_factor: float) -> float:
            decided = self.decide(task, quality, sd, expense, width, factor=math.exp(log_factor))
            return -math.inf if decided is None else float(decided[0] @ quality) - decided[1].bar

        if expected(high) <= 0.0:
            return math.exp(high)
        if expected(low) >= 0.0:
            return math.exp(low)
        for _ in range(30):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if expected(mid) < 0.0 else (low, mid)
        return math.exp(high)

    def decide(self, task: str, quality: np.ndarray, sd: np.ndarray, expense: np.ndarray, width: float,
               factor: float | None = None) -> tuple[np.ndarray, BarDecision] | None:
        """Probabilities over the eligible models (before the policy's floor) and what shaped them, or
        None when the task has no bar. ``quality``/``sd``: each model's quality estimate and its
        posterior sd; ``expense``: predicted cost (and priced latency) per model; ``factor``: the
        price factor to use instead of the task's own (price rule)."""
        value = self.bar.for_task(task)
        if value is None:
            return None
        best = float(np.max(quality)) if quality.shape[0] else 0.0
        bar = value * best if self.bar.relative else value
        shift, price = self.shift(task), math.nan
        if self.rule == "price":
            factor = self.price_factor(task) if factor is None else factor
            price = frontier_price(np.minimum(quality + self.price_z * sd, 1.0), expense, bar) * factor
            p, none_clear = priced_choice(quality, sd, expense, price, width), float(not math.isfinite(price))
        elif self.rule == "mix":
            p, none_clear = cheapest_mix(quality, sd, expense, bar - shift, width)
        else:
            p, none_clear = plausible_cheapest(quality, sd, expense, bar - shift, width, self.cap_z)
        total = float(p.sum())  # the integral's quadrature leaves the sum within ~1e-3 of 1
        p = p / total if total > 0 else np.full(p.shape[0], 1.0 / max(p.shape[0], 1))
        # unreachable: even optimistically (2 posterior sd up) no model is expected to meet the bar
        optimistic = float(np.max(quality + 2.0 * sd)) if quality.shape[0] else 0.0
        return p, BarDecision(bar=float(bar), effective_bar=float(bar - shift), unreachable=optimistic < bar,
                              none_clear=float(none_clear), price=float(price))

    def count(self, task: str, model: str, quality: float) -> None:
        """One scored outcome of ``model`` on ``task``, for the task's quality estimates only."""
        q = min(max(float(quality), 0.0), 1.0)
        with self._lock:
            for table in (self._stats.setdefault(task, {}), self._overall):
                n, total = table.get(model, (0.0, 0.0))
                table[model] = (n + 1.0, total + q)

    def observe(self, task: str, quality: float, bar: float, model: str | None = None) -> None:
        """A scored outcome on ``task`` whose decision had to meet ``bar`` (``model``: who answered)."""
        if model is not None:
            self.count(task, model, quality)
        with self._lock:
            limit = self.max_shift / self.gain if self.gain > 0 else math.inf
            surplus = self._surplus.get(task, 0.0) + float(quality) - float(bar)
            self._surplus[task] = min(max(surplus, -limit), limit)

    def shifts(self) -> dict[str, float]:
        """Per task: the bar's shift (0 under the price rule)."""
        return {task: self.shift(task) for task in list(self._surplus)}

    def price_factors(self) -> dict[str, float]:
        """Per task: the price rule's factor on the frontier price (1 under the shifted-bar rules)."""
        return {task: self.price_factor(task) for task in list(self._surplus)}
