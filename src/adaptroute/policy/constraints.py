"""Quality bars: per task, the least expected cost (and latency, by its weight) whose quality meets a bar.

A bar is a constraint on top of the policy's separate predictions, not a new reward: "minimise the
task's expected cost subject to its mean quality >= bar". Its Lagrangian prices quality: per request,
the model with the best ``price * quality - expense`` wins, on a Thompson draw of each model's quality
on the task (policy.bar_control keeps the task's counts, policy.bar_dual the rule). The price starts
where the task's cheapest-mix frontier crosses the bar, so a cheap model that misses the bar on average
and a stronger one share the task at a mean cost below the cheapest single model that passes, and it
moves with the task's realised quality against the bar (dual ascent), so the task's mean quality is
held at the bar and a shortfall is paid back where quality is cheapest per point. The probabilities
are exact (Thompson sampling's integral), so the logged propensity is the one drawn from. A task whose
bar no model can meet ends on its best model, and the decision says so (``unreachable``).

Measured against the alternatives (the cheapest model whose draw clears a bar shifted by the surplus,
the previous rule; a per-draw LP mixing two models; the policy's per-prompt predictions instead of the
task's counts) in experiments/controls.py (results in experiments/results/controls.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import RewardWeights
from ..errors import ConfigError
from .bar_cheapest import plausible_cheapest
from .bar_control import BarControl, BarDecision
from .base import Policy
from .records import Prediction
from .thompson import ThompsonSampling

__all__ = ["DEFAULT_COST_SHARE", "QUALITY_ONLY", "default_weights", "BarControl", "BarDecision", "QualityBar",
           "expense_weights", "plausible_cheapest", "predict_under_bar"]


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


def expense_weights(base: RewardWeights) -> tuple[float, float]:
    """(per USD, per second) of what a bar minimises: cost, with latency priced by the user's weights
    (``latency / cost`` USD per second); latency alone when only latency is weighted."""
    if base.cost > 0:
        return 1.0, base.latency / base.cost
    if base.latency > 0:
        return 0.0, 1.0
    return 1.0, 0.0


QUALITY_ONLY = RewardWeights(quality=1.0, cost=0.0, latency=0.0, failure=0.0)  # reward sd = quality's sd


def predict_under_bar(
    policy: Policy, x: np.ndarray, eligible: Sequence[str], base: RewardWeights, control: BarControl, task: str
) -> tuple[Prediction, BarDecision | None]:
    """The policy's prediction for one request with a bar's probabilities in place of the reward's
    (with the policy's floor), or the plain prediction under ``base`` when the task has no bar."""
    if not control.applies(task):
        return policy.predict(x, eligible, base), None
    quality = policy.predict(x, eligible, QUALITY_ONLY)
    means, sd = quality.means, quality.sd
    if control.estimate == "task":  # the task's own counts, not the request's prediction (see bar_control)
        means = means.copy()
        means[:, 0], sd = control.task_posterior(task, quality.models)
    per_usd, per_s = expense_weights(base)
    expense = per_usd * np.maximum(means[:, 1], 0.0) + per_s * np.maximum(means[:, 2], 0.0)
    k = means.shape[0]
    width = control.width if control.width is not None else (policy.width(k) if isinstance(policy, ThompsonSampling) else 1.0)
    p, decision = control.decide(task, means[:, 0], sd, expense, width)  # type: ignore[misc]
    if k > 1:
        p = p * (1.0 - policy.floor) + policy.floor / k
    return Prediction(quality.models, means, means @ base.vector(), sd, p), decision
