"""Quality bars: per task, the least expected cost (and latency, by its weight) whose quality meets a bar.

A bar is a constraint on top of the policy's separate predictions, not a new reward. Per request, each
eligible model's quality is drawn from the policy's posterior (Thompson sampling's draw, at its width);
the request goes to the cheapest model (by predicted cost, plus latency priced by the user's weights)
whose draw clears the bar, and when no draw does, to the model with the highest draw. The selection
probabilities have a closed form (``plausible_cheapest``), so the logged propensity is the exact
probability drawn from. A model that surely passes is then used; a cheaper one that might pass keeps
being tried in proportion to how plausibly it does.

Per task, the bar each request must clear moves with the task's observed quality by bounded integral
control: ``effective bar = bar - gain * S`` (within ``max_shift``) with ``S`` the sum of (quality - bar)
over the task's scored requests. Quality above the bar lets cheaper models qualify; the shortfall of
early exploration is paid back with stronger models later. Because ``S`` is a sum, the task's *mean*
quality is driven to the bar, which lets a cheap model that misses the bar on average share a task with
a stronger one, below the cost of the cheapest single model that passes. A task whose bar no model can
meet ends on its best model (no draw clears), and the decision says so (``unreachable``).

A per-task Lagrange multiplier on cost (tried first during development, not kept) met the bars by
buying quality from pricier models; the variants of this rule are compared in experiments/controls.py
(results in experiments/results/controls.md).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import RewardWeights
from ..errors import ConfigError
from .base import Policy
from .records import Prediction
from .thompson import ThompsonSampling, _normal_cdf, win_probabilities

__all__ = ["DEFAULT_COST_SHARE", "QUALITY_ONLY", "default_weights", "BarControl", "BarDecision", "QualityBar", "expense_weights", "plausible_cheapest", "predict_under_bar"]

# Integral gain (quality points of bar shift per quality point of surplus) and the largest shift: 100
# requests 0.1 above the bar lower it by 0.1 (the most it moves). Chosen on synthetic markets and RouterBench together
# (experiments/controls.py), not on one dataset.
BAR_GAIN = 0.01
BAR_MAX_SHIFT = 0.1
# The quality draws use the full posterior (width 1), not Thompson sampling's narrowed reward width: a
# model barely tried on a task sits at the field's mean with the field's spread, and a narrowed draw
# never finds it plausible again (on RouterBench, the one cheap model that passes arc-challenge was
# dropped after two unlucky tries).
BAR_WIDTH: float | None = 1.0
# Candidates stop at the cheapest model that plausibly passes (posterior mean + CAP_Z sd >= the bar):
# a pricier model cannot make the task cheaper, and exploring it costs most when prices span 100x.
BAR_CAP_Z = 1.0


@dataclass(frozen=True, slots=True)
class QualityBar:
    """Bars per task (``bars``), a ``default`` for the other tasks, or neither (no bar).

    ``relative=True`` reads every value as a share of the best model's predicted quality on the request
    (``0.9`` = within 90% of the best model): the form used when no bar is configured.
    """

    bars: Mapping[str, float] = field(default_factory=dict)
    default: float | None = None
    relative: bool = False

    def __post_init__(self) -> None:
        for task, value in [*self.bars.items(), ("default", self.default)]:
            if value is None and task == "default":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"quality bar for {task!r} must be a number in [0, 1], got {value!r}")
        object.__setattr__(self, "bars", dict(self.bars))

    @classmethod
    def of(cls, spec: QualityBar | float | Mapping[str, float] | str | None) -> QualityBar | None:
        """A QualityBar from a float (every task), a {task: bar} mapping, a string ("0.9",
        "extract=0.95,draft=0.8", "0.9*best"), a QualityBar, or None."""
        if spec is None or isinstance(spec, QualityBar):
            return spec
        if isinstance(spec, str):
            return cls.parse(spec)
        if isinstance(spec, Mapping):
            bars = {str(k): v for k, v in spec.items()}
            default = bars.pop("*", None)
            return cls(bars, default)
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return cls({}, float(spec))
        raise ConfigError(f"quality_bar must be a number, a {{task: bar}} dict or a QualityBar, got {type(spec).__name__}")

    @classmethod
    def parse(cls, text: str) -> QualityBar:
        """``"0.9"``, ``"extract=0.95,draft=0.8"`` (``*=0.7`` for every other task), ``"0.9*best"``."""
        text = text.strip()
        relative = text.endswith("*best")
        if relative:
            text = text.removesuffix("*best").strip()
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise ConfigError("quality bar: empty; expected e.g. 0.9 or extract=0.95,draft=0.8")
        bars: dict[str, float] = {}
        default: float | None = None
        for part in parts:
            task, sep, raw = part.rpartition("=")
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"quality bar: {part!r} is not task=number or a number") from None
            if not sep or task.strip() == "*":
                default = value
            else:
                bars[task.strip()] = value
        return cls(bars, default, relative)

    def for_task(self, task: str) -> float | None:
        return self.bars.get(task, self.default)

    def describe(self) -> str:
        suffix = "*best" if self.relative else ""
        items = [f"{t}={v:g}{suffix}" for t, v in self.bars.items()]
        if self.default is not None:
            items.append(f"{self.default:g}{suffix}" if not items else f"*={self.default:g}{suffix}")
        return ",".join(items)


# Out of the box (no weights, no bar, no budget) the cost weight makes the priciest model's expected cost
# for a typical request worth 0.1 quality points: quality first, but a model must be 10 points better to
# be worth the priciest price. Measured against the alternatives (a relative bar 0.9*best, cost shares
# 0.3 and 0) on RouterBench and synthetic markets: experiments/results/controls.md ("default").
DEFAULT_COST_SHARE = 0.1


def default_weights(priciest_cost_usd: float) -> RewardWeights:
    """The default reward weights for a deployment whose priciest model costs this much per request."""
    if not priciest_cost_usd > 0 or not math.isfinite(priciest_cost_usd):
        return RewardWeights()
    return RewardWeights(cost=DEFAULT_COST_SHARE / priciest_cost_usd)


@dataclass(frozen=True, slots=True)
class BarDecision:
    """What a bar did to one decision: logged with it, so replay and tune can evaluate other bars."""

    bar: float  # the absolute bar this request had to meet (a relative bar already resolved)
    effective_bar: float  # the bar the draws had to clear, after the task's shift
    unreachable: bool  # no eligible model is expected to meet the bar, even 2 sd up: the best one is sought
    none_clear: float  # the probability that no draw cleared it (the request then sought the best model)


def expense_weights(base: RewardWeights) -> tuple[float, float]:
    """(per USD, per second) of what a bar minimises: cost, with latency priced by the user's weights
    (``latency / cost`` USD per second); latency alone when only latency is weighted."""
    if base.cost > 0:
        return 1.0, base.latency / base.cost
    if base.latency > 0:
        return 0.0, 1.0
    return 1.0, 0.0


def plausible_cheapest(
    quality: np.ndarray, sd: np.ndarray, expense: np.ndarray, bar: float, width: float = 1.0, cap_z: float | None = BAR_CAP_Z
) -> tuple[np.ndarray, float]:
    """Selection probabilities of "the cheapest model whose quality draw clears ``bar``, else the
    highest draw", for independent draws N(quality_k, (width * sd_k)^2) clipped to [0, 1], and the
    probability that no draw clears (the best-model fallback)."""
    k = quality.shape[0]
    s = np.maximum(width * sd, 1e-9)
    clear = _normal_cdf((quality - bar) / s)
    clear = np.where(bar > 1.0, 0.0, np.where(bar <= 0.0, 1.0, clear))
    order = np.argsort(expense, kind="stable")
    # Models pricier than the cheapest one that plausibly passes are not candidates (see BAR_CAP_Z).
    passing = order[quality[order] + (cap_z or 0.0) * s[order] >= bar] if cap_z is not None else order[:0]
    if passing.size:
        order = order[expense[order] <= expense[passing[0]]]
    p = np.zeros(k)
    none_yet = 1.0
    for i in order:
        p[i] = none_yet * float(clear[i])
        none_yet *= 1.0 - float(clear[i])
    if none_yet > 0:
        sub = np.zeros(k)
        sub[order] = win_probabilities(quality[order], s[order], np.zeros(order.size), np.ones(order.size))
        p += none_yet * sub
    total = float(p.sum())
    return (p / total if total > 0 else np.full(k, 1.0 / k)), none_yet


class BarControl:
    """Per-task bar state for a QualityBar: the surplus that shifts each task's effective bar."""

    def __init__(
        self, bar: QualityBar, *, gain: float = BAR_GAIN, max_shift: float = BAR_MAX_SHIFT, width: float | None = BAR_WIDTH,
        cap_z: float | None = BAR_CAP_Z,
    ) -> None:
        """``gain``/``max_shift``: the task shift; ``width``: the quality draws' posterior width (None:
        the policy's own); ``cap_z``: where candidates stop (None: every model is a candidate)."""
        if not gain >= 0 or not max_shift >= 0:
            raise ConfigError(f"bar gain and max_shift must be >= 0, got {gain}, {max_shift}")
        if width is not None and not width > 0:
            raise ConfigError(f"bar width must be > 0 (or None: the policy's own), got {width}")
        self.bar = bar
        self.gain, self.max_shift = float(gain), float(max_shift)
        self.width = width
        self.cap_z = cap_z
        self._surplus: dict[str, float] = {}
        self._lock = threading.Lock()

    def applies(self, task: str) -> bool:
        return self.bar.for_task(task) is not None

    def shift(self, task: str) -> float:
        """How far the task's effective bar sits below (negative: above) its bar."""
        with self._lock:
            surplus = self._surplus.get(task, 0.0)
        return min(max(self.gain * surplus, -self.max_shift), self.max_shift)

    def decide(self, task: str, quality: np.ndarray, sd: np.ndarray, expense: np.ndarray, width: float) -> tuple[np.ndarray, BarDecision] | None:
        """Probabilities over the eligible models (before the policy's floor) and what shaped them, or
        None when the task has no bar. ``quality``/``sd``: the policy's predicted quality and its
        posterior sd per model; ``expense``: predicted cost (and priced latency) per model."""
        value = self.bar.for_task(task)
        if value is None:
            return None
        best = float(np.max(quality)) if quality.shape[0] else 0.0
        bar = value * best if self.bar.relative else value
        shift = self.shift(task)
        p, none_clear = plausible_cheapest(quality, sd, expense, bar - shift, width, self.cap_z)
        # unreachable: even optimistically (2 posterior sd up) no model is expected to meet the bar
        optimistic = float(np.max(quality + 2.0 * sd)) if quality.shape[0] else 0.0
        return p, BarDecision(bar=float(bar), effective_bar=float(bar - shift), unreachable=optimistic < bar,
                              none_clear=float(none_clear))

    def observe(self, task: str, quality: float, bar: float) -> None:
        """A scored outcome on ``task`` whose decision had to meet ``bar``."""
        with self._lock:
            limit = self.max_shift / self.gain if self.gain > 0 else math.inf
            surplus = self._surplus.get(task, 0.0) + float(quality) - float(bar)
            self._surplus[task] = min(max(surplus, -limit), limit)

    def shifts(self) -> dict[str, float]:
        return {task: self.shift(task) for task in list(self._surplus)}


QUALITY_ONLY = RewardWeights(quality=1.0, cost=0.0, latency=0.0, failure=0.0)  # reward sd = quality's sd


def predict_under_bar(
    policy: Policy, x: np.ndarray, eligible: Sequence[str], base: RewardWeights, control: BarControl, task: str
) -> tuple[Prediction, BarDecision | None]:
    """The policy's prediction for one request with a bar's probabilities in place of the reward's
    (with the policy's floor), or the plain prediction under ``base`` when the task has no bar."""
    if not control.applies(task):
        return policy.predict(x, eligible, base), None
    quality = policy.predict(x, eligible, QUALITY_ONLY)
    means = quality.means
    per_usd, per_s = expense_weights(base)
    expense = per_usd * np.maximum(means[:, 1], 0.0) + per_s * np.maximum(means[:, 2], 0.0)
    k = means.shape[0]
    width = control.width if control.width is not None else (policy.width(k) if isinstance(policy, ThompsonSampling) else 1.0)
    p, decision = control.decide(task, means[:, 0], quality.sd, expense, width)  # type: ignore[misc]
    if k > 1:
        p = p * (1.0 - policy.floor) + policy.floor / k
    return Prediction(quality.models, means, means @ base.vector(), quality.sd, p), decision
