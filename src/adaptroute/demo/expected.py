"""What the demo's router should settle on: per task, the best model under the objective it learns.

The router learns each call's own outcome: a first answer that fails is learned as quality 0 at that
model's own cost and latency, and the escalated answer (escalate_below) as an observation of the model
it went to. So a task without controls is won by the largest expected reward per call,
``w_q * pass rate - w_c * cost - w_l * latency``, with the pass rate averaged over the prompts'
difficulty (the grader's ``sigmoid(logit p - spread * d)``, ``d ~ N(0, 1)``, by Gauss-Hermite
quadrature), the cost at the workload's mean token counts and the latency the simulated provider's mean
(log-normal around the model's median).

The controls change the rule (their semantics are policy.constraints' and policy.pacing's):

* A quality bar holds the task's *mean* quality of the answers users get (escalations included) at the
  bar, at the least expense (cost, plus latency at the weights' price of a second): its price on quality
  moves with the returned answers' quality against the bar (dual ascent). Its steady state is that
  linear programme's answer: the cheapest model if its answers, escalations included, deliver the bar,
  else the mix of two models on the (delivered quality, expense) frontier that delivers it on average.
* A budget paces spend, escalations included, to ``usd / per_requests`` per request: a raised cost weight
  moves traffic down the cost-reward frontier until spend fits the pace, mixing the last model over the
  pace with the first within it in the shares that spend exactly the pace.

"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..config import RewardWeights
from ..datasets.synthetic import ModelProfile, TaskProfile, WorkloadProfile
from ..policy.constraints import expense_weights
from ..policy.pacing import Budget
from .provider import LATENCY_SIGMA

__all__ = ["Candidate", "TaskTarget", "expected_targets", "mean_pass_rate", "mean_tokens"]

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(48)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
PROMPT_SIGMA, ANSWER_SIGMA = 0.4, 0.3  # the workload's log-normal spread of prompt and answer tokens


def _pass_curve(p: float, spread: float) -> np.ndarray:
    """The grader's pass probability at each quadrature node of the difficulty d ~ N(0, 1)."""
    p = min(max(p, 1e-4), 1 - 1e-4)
    return 1.0 / (1.0 + np.exp(-(math.log(p / (1 - p)) - spread * _NODES)))


def mean_pass_rate(p: float, spread: float) -> float:
    """E over d ~ N(0, 1) of sigmoid(logit p - spread * d): the pass rate the router measures."""
    return float(_WEIGHTS @ _pass_curve(p, spread))


def mean_tokens(task: TaskProfile) -> tuple[float, float]:
    """Mean prompt and answer tokens of the workload: int(median * lognormal) (+1 for answers)."""
    return (task.tokens_in * math.exp(PROMPT_SIGMA**2 / 2) - 0.5,
            task.tokens_out * math.exp(ANSWER_SIGMA**2 / 2) + 0.5)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model on one task, as the router learns it."""

    model: str
    pass_rate: float  # first answer, averaged over difficulty
    cost_usd: float  # per call, at mean tokens
    latency_s: float
    reward: float  # per call: what the router learns of this model
    escalates_to: str | None  # where a failed answer goes (the strongest model above it)
    delivered: float  # quality of the answer the user gets, escalation included
    spend_usd: float  # what one request costs, escalation included (what a budget is charged)


@dataclass(frozen=True, slots=True)
class TaskTarget:
    """Where the router should settle on one task, the runner-up, and by how much it wins."""

    task: str
    rule: str  # "reward", "bar" or "budget": what decides
    best: str
    runner_up: str
    gap: float  # reward: best - runner-up per call; bar: the smaller of the two pass-rate margins; budget: share - runner-up share
    share: float  # the best's expected share of first choices in the steady state
    detail: str  # one line saying why
    candidates: tuple[Candidate, ...]

    def describe(self) -> str:
        return f"{self.task} -> {self.best} ({self.detail})"


def _candidates(task: TaskProfile, models: Sequence[ModelProfile], weights: RewardWeights, escalation: bool) -> list[Candidate]:
    tin, tout = mean_tokens(task)
    curves = {m.name: _pass_curve(m.quality[task.name], task.difficulty_spread) for m in models}
    rates = {name: float(_WEIGHTS @ c) for name, c in curves.items()}
    costs = {m.name: tin * m.input_cost_per_token + tout * m.output_cost_per_token for m in models}
    out = []
    for m in models:
        stronger = [n for n in rates if rates[n] > rates[m.name]] if escalation else []
        target = max(stronger, key=rates.__getitem__) if stronger else None
        fail = 1.0 - curves[m.name]
        if target is None:
            delivered, spend = rates[m.name], costs[m.name]
        else:
            delivered = 1.0 - float(_WEIGHTS @ (fail * (1.0 - curves[target])))
            spend = costs[m.name] + (1.0 - rates[m.name]) * costs[target]
        latency = m.latency_s * math.exp(LATENCY_SIGMA**2 / 2)
        reward = weights.quality * rates[m.name] - weights.cost * costs[m.name] - weights.latency * latency
        out.append(Candidate(m.name, rates[m.name], costs[m.name], latency, reward, target, delivered, spend))
    return out


def _by_reward(task: str, cands: list[Candidate], rule: str = "reward", extra: str = "") -> TaskTarget:
    first, second = sorted(cands, key=lambda c: -c.reward)[:2]
    return TaskTarget(task, rule, first.model, second.model, first.reward - second.reward, 1.0,
                      f"{extra}reward {first.reward:.3f} per call; next {second.model} {second.reward:.3f}, "
                      f"gap {first.reward - second.reward:.3f}", tuple(cands))


def _under_bar(task: str, cands: list[Candidate], bar: float, weights: RewardWeights) -> TaskTarget:
    """Least expense (cost, plus latency at the weights' price of a second) subject to the task's mean
    delivered quality >= ``bar``: the steady state of the bar's dual ascent, which moves its price on
    quality with the returned answers' quality (escalations included) against the bar. The LP's answer
    is the cheapest model if it delivers the bar, else the mix of the two models on the lower convex
    hull of (delivered quality, expense) that straddle the bar."""
    per_usd, per_s = expense_weights(weights)
    expense = {c.model: per_usd * c.cost_usd + per_s * c.latency_s for c in cands}
    order = sorted(cands, key=lambda c: (expense[c.model], -c.delivered))
    current = order[0]
    if current.delivered >= bar:
        nxt = order[1] if len(order) > 1 else current
        return TaskTarget(task, "bar", current.model, nxt.model, current.delivered - bar, 1.0,
                          f"the cheapest model, and its answers with escalations deliver {current.delivered:.3f} >= "
                          f"the bar {bar:g}, its first answers passing {current.pass_rate:.3f}; next cheapest {nxt.model}",
                          tuple(cands))
    while True:  # walk the lower hull of (delivered, expense) up to the bar
        better = [c for c in cands if c.delivered > current.delivered + 1e-12]
        if not better:  # no model delivers the bar: the best one is sought
            second = sorted(cands, key=lambda d: -d.delivered)[1]
            return TaskTarget(task, "bar", current.model, second.model, current.delivered - second.delivered, 1.0,
                              f"no model delivers the bar {bar:g}: the strongest", tuple(cands))
        nxt = min(better, key=lambda c: (expense[c.model] - expense[current.model]) / (c.delivered - current.delivered))
        if nxt.delivered >= bar:
            share = (nxt.delivered - bar) / (nxt.delivered - current.delivered)  # of current: mean delivered = bar
            best, other, s = (current, nxt, share) if share >= 0.5 else (nxt, current, 1.0 - share)
            return TaskTarget(task, "bar", best.model, other.model, 2 * s - 1, s,
                              f"{current.model} delivers {current.delivered:.3f} < {bar:g} and {nxt.model} "
                              f"{nxt.delivered:.3f}: the bar mixes them {100 * share:.0f}% / {100 * (1 - share):.0f}% "
                              "to deliver it on average", tuple(cands))
        current = nxt


def _under_budget(task: str, cands: list[Candidate], budget: Budget) -> TaskTarget:
    pace = budget.usd / (budget.per_requests or 1)
    top = max(cands, key=lambda c: c.reward)
    if top.spend_usd <= pace:
        return _by_reward(task, cands, "budget", f"spends ${top.spend_usd:.5f} a request with escalations, within "
                          f"the budget's pace of ${pace:.5f}; ")
    # raise the cost weight: the frontier's next model is the one that takes over at the smallest rise
    current = top
    while current.spend_usd > pace:
        cheaper = [c for c in cands if c.cost_usd < current.cost_usd]
        if not cheaper:
            break
        nxt = min(cheaper, key=lambda c: (current.reward - c.reward) / (current.cost_usd - c.cost_usd))
        if nxt.spend_usd <= pace:
            share = (pace - nxt.spend_usd) / (current.spend_usd - nxt.spend_usd)  # of the one over the pace
            best, other, s = (nxt, current, 1.0 - share) if share <= 0.5 else (current, nxt, share)
            return TaskTarget(task, "budget", best.model, other.model, 2 * s - 1, s,
                              f"the best within the budget's pace of ${pace:.5f} a request: spends ${nxt.spend_usd:.5f} "
                              f"with escalations, {current.model} ${current.spend_usd:.5f}; pacing mixes them "
                              f"{100 * (1 - share):.0f}% / {100 * share:.0f}%", tuple(cands))
        current = nxt
    return TaskTarget(task, "budget", current.model, top.model, 1.0, 1.0,
                      f"the cheapest on the frontier: nothing fits the pace ${pace:.5f}", tuple(cands))


def expected_targets(
    profile: WorkloadProfile, weights: RewardWeights, *, bars: Mapping[str, float] | None = None,
    budget: Budget | None = None, escalation: bool = True, prices: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, TaskTarget]:
    """Per task, the model the router should settle on (see the module text). ``prices`` overrides
    models' (input, output) prices per token, as after a price change."""
    prices = prices or {}
    models = [replace(m, input_cost_per_token=prices[m.name][0], output_cost_per_token=prices[m.name][1])
              if m.name in prices else m for m in profile.models]
    out = {}
    for task in profile.tasks:
        cands = _candidates(task, models, weights, escalation)
        if bars and task.name in bars:
            out[task.name] = _under_bar(task.name, cands, bars[task.name], weights)
        elif budget is not None and budget.task == task.name:
            out[task.name] = _under_budget(task.name, cands, budget)
        else:
            out[task.name] = _by_reward(task.name, cands)
    return out
