"""The simulation loop under operator controls: a quality bar per task and a budget per request.

The same mechanisms the Router uses (policy.constraints, policy.pacing), driven by the replayed
prompts: per step, the budget adds its pacing weight and drops what it cannot pay for, the bar (if the
task has one) sets the probabilities, the policy's draw picks the model, and the chosen model's
outcome is learned and fed back to the controls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import RewardWeights
from ..policy import Policy
from ..policy.constraints import BarControl, QualityBar, predict_under_bar
from ..policy.pacing import Budget, Pacer

__all__ = ["Controls", "run_controlled"]


@dataclass
class Controls:
    """What a simulation is asked to respect; build with Controls.of()."""

    bar: BarControl | None = None
    pacer: Pacer | None = None

    @classmethod
    def of(cls, bar: QualityBar | float | dict[str, float] | str | None, budget_per_request: float | None) -> Controls:
        spec = QualityBar.of(bar)
        return cls(BarControl(spec) if spec is not None else None,
                   Pacer(Budget(usd=float(budget_per_request), per_requests=1)) if budget_per_request is not None else None)

    @property
    def active(self) -> bool:
        return self.bar is not None or self.pacer is not None


def run_controlled(
    agent: Policy, X: np.ndarray, tasks: np.ndarray, targets: np.ndarray, order: Iterable[int], weights: RewardWeights,
    controls: Controls, rng: np.random.Generator, chosen: np.ndarray, bars: np.ndarray,
    eligible: Sequence[str] | None = None, first_step: int = 0,
) -> None:
    """Fill ``chosen`` (model index per step) and ``bars`` (the bar each step had to meet, NaN: none),
    choosing among ``eligible`` (default: every model); the clock starts at ``first_step``."""
    models = agent.models
    index = {m: i for i, m in enumerate(models)}
    bar, pacer = controls.bar, controls.pacer
    present = list(models if eligible is None else eligible)
    for step, row in enumerate(order):
        x, task, now = X[row], str(tasks[row]), float(first_step + step)
        w, names = weights, present
        if pacer is not None:
            pacer.decided(now)
            w = w.model_copy(update={"cost": w.cost + w.quality * pacer.cost_weight(now)})
            expected = agent.predict(x, present, w).means[:, 1]
            ok = pacer.affordable(expected, now)
            if not ok.any():  # nothing fits what is left: the cheapest expected model
                ok = expected == expected.min()
            names = [m for m, fits in zip(present, ok, strict=True) if fits]
        if bar is not None:
            prediction, decision = predict_under_bar(agent, x, names, w, bar, task)
        else:
            prediction, decision = agent.predict(x, names, w), None
        p = prediction.probabilities
        j = min(int(np.cumsum(p).searchsorted(rng.random() * p.sum(), side="right")), len(p) - 1)
        k = index[prediction.models[j]]
        agent.update(x, models[k], targets[row, k])
        chosen[step] = k
        if decision is not None and bar is not None:
            bars[step] = decision.bar
            bar.observe(task, float(targets[row, k, 0]), decision.bar, models[k])
        if pacer is not None:
            pacer.charge(float(targets[row, k, 1]), now)
