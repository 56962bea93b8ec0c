"""Replay full-information benchmark data through a policy that sees only what it chose.

Every model's outcome is known for every prompt, so any policy can be run as if live: at each step it
sees the context (task, and the prompt text when the data has it), picks a model with its own
probabilities and a seeded draw, and learns only the chosen model's outcome.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import RewardWeights
from ..datasets.base import FullInfoDataset
from ..errors import ConfigError, DatasetError
from ..features import Featurizer, HashingFeaturizer
from ..policy import ModelPrior, Policy, make_policy
from ..policy.constraints import QualityBar, default_weights
from .baselines import Reference, reference_points, reward_matrix
from .constrained import Controls, run_controlled
from .per_task import per_task_summary

__all__ = ["SimulationResult", "featurize", "simulate"]


@dataclass(frozen=True)
class SimulationResult:
    policy: str
    weights: RewardWeights
    seed: int
    passes: int
    n: int
    skipped: int
    mean_quality: float
    mean_cost_usd: float
    mean_latency_s: float | None
    mean_reward: float
    model_shares: dict[str, float]
    baselines: dict[str, Reference]
    regret_vs_oracle: float  # total reward lost against the per-prompt oracle
    regret_vs_best_fixed_per_task: float
    chosen: np.ndarray = field(repr=False)  # model index per step
    prompt_rows: np.ndarray = field(repr=False)  # dataset row per step
    models: tuple[str, ...] = ()
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)  # see replay.per_task
    controls: dict[str, Any] = field(default_factory=dict)  # the bar and budget the run respected

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "weights": self.weights.model_dump(),
            "seed": self.seed,
            "passes": self.passes,
            "n": self.n,
            "skipped": self.skipped,
            "mean_quality": self.mean_quality,
            "mean_cost_usd": self.mean_cost_usd,
            "mean_latency_s": self.mean_latency_s,
            "mean_reward": self.mean_reward,
            "model_shares": self.model_shares,
            "baselines": {name: ref.to_dict() for name, ref in self.baselines.items()},
            "regret_vs_oracle": self.regret_vs_oracle,
            "regret_vs_best_fixed_per_task": self.regret_vs_best_fixed_per_task,
            "controls": self.controls,
            "per_task": self.per_task,
        }


def featurize(featurizer: Featurizer, data: FullInfoDataset) -> np.ndarray:
    return data.features(featurizer)


def simulate(
    data: FullInfoDataset,
    policy: str | Policy = "thompson",
    weights: RewardWeights | None = None,
    *,
    seed: int = 0,
    passes: int = 1,
    warm_start: FullInfoDataset | None = None,
    featurizer: Featurizer | None = None,
    priors: Mapping[str, ModelPrior] | None = None,
    progress: bool = False,
    bar: QualityBar | float | dict[str, float] | str | None = None,
    budget_per_request: float | None = None,
    controls: Controls | None = None,
) -> SimulationResult:
    """Stream ``passes`` seeded shuffles of ``data`` through ``policy`` (a name or a fresh Policy), with
    ``priors`` (what is known of some models before their first request) set first.

    Operator controls, as the Router applies them: ``bar`` (one number, {task: bar}, "0.9*best" or a
    QualityBar) and ``budget_per_request`` (USD, paced over the run). Without weights, a bar or a
    budget, the default weights apply (policy.constraints.default_weights: the priciest model's mean
    cost in the data is worth 0.1 quality points). ``controls`` (replay.constrained.Controls) hands in
    the mechanisms themselves instead, with settings of their own (for experiments on the controls)."""
    if passes < 1:
        raise ConfigError(f"passes must be >= 1, got {passes}")
    if len(data) == 0:
        raise DatasetError(f"{data.source}: no complete prompts to simulate")
    if controls is None:
        controls = Controls.of(bar, budget_per_request)
    if weights is None:
        weights = RewardWeights() if controls.active else default_weights(float(data.cost_usd.mean(axis=0).max()))
    if data.latency_s is None and weights.latency:
        raise ConfigError(f"{data.source} has no latency, so a latency weight cannot be simulated")
    featurizer = featurizer or HashingFeaturizer()
    agent = make_policy(policy, weights=weights, seed=seed) if isinstance(policy, str) else policy
    agent.weights = weights
    unknown = sorted(set(priors or ()) - set(data.models))
    if unknown:
        raise ConfigError(f"priors name models that {data.source} does not have: {unknown}")
    for model in data.models:
        agent.add_model(model, (priors or {}).get(model))
    if warm_start is not None:
        missing = [m for m in data.models if m not in warm_start.models]
        if missing:
            raise DatasetError(f"warm-start data {warm_start.source} lacks models {missing}")
        warm = warm_start.select_models(data.models)
        agent.fit(warm.as_batch(featurize(featurizer, warm)), select_prior=True)
    X = featurize(featurizer, data)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(data)) for _ in range(passes)])
    targets = np.stack(
        [data.quality, data.cost_usd, np.zeros_like(data.cost_usd) if data.latency_s is None else data.latency_s,
         np.zeros_like(data.cost_usd)],
        axis=2,
    )
    models = data.models
    chosen = np.empty(order.shape[0], dtype=np.int64)
    steps = _progress(order, progress, f"simulate {agent.name}")
    direct = agent.models == models  # the policy knows exactly the data's models, in the same order
    bars = np.full(order.shape[0], np.nan)
    if controls.active:
        if not direct:
            raise ConfigError("operator controls need a policy that knows exactly the data's models")
        run_controlled(agent, X, data.tasks, targets, steps, weights, controls, rng, chosen, bars)
        steps = ()
    for step, row in enumerate(steps):
        x = X[row]
        if direct:  # nothing is logged here, so the policy may draw without computing probabilities
            k = agent.sample(x, rng)
        else:
            probs = agent.predict(x, models).probabilities
            k = min(int(probs.cumsum().searchsorted(rng.random() * probs.sum(), side="right")), len(models) - 1)
        agent.update(x, models[k], targets[row, k])
        chosen[step] = k
    R = reward_matrix(data, weights)
    refs = reference_points(data, weights)
    got = R[order, chosen]
    per_task = np.empty(len(data))
    for task in np.unique(data.tasks):
        rows = data.tasks == task
        per_task[rows] = R[rows, int(R[rows].mean(axis=0).argmax())]
    oracle = R.max(axis=1)
    shares = np.bincount(chosen, minlength=len(models)) / chosen.shape[0]
    return SimulationResult(
        policy=agent.name,
        weights=weights,
        seed=seed,
        passes=passes,
        n=int(order.shape[0]),
        skipped=data.skipped,
        mean_quality=float(data.quality[order, chosen].mean()),
        mean_cost_usd=float(data.cost_usd[order, chosen].mean()),
        mean_latency_s=None if data.latency_s is None else float(data.latency_s[order, chosen].mean()),
        mean_reward=float(got.mean()),
        model_shares={m: float(s) for m, s in zip(models, shares, strict=True)},
        baselines=refs,
        regret_vs_oracle=float((oracle[order] - got).sum()),
        regret_vs_best_fixed_per_task=float((per_task[order] - got).sum()),
        chosen=chosen,
        prompt_rows=order,
        models=models,
        per_task=per_task_summary(data, order, chosen, controls.bar.bar if controls.bar else None),
        controls=_describe(controls),
    )


def _describe(controls: Controls) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if controls.bar is not None:
        out["bar"] = controls.bar.bar.describe()
    if controls.pacer is not None:
        out["budget_per_request_usd"] = controls.pacer.budget.usd
    return out


def _progress(items: np.ndarray, show: bool, label: str) -> Any:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, file=sys.stderr, unit="prompt", mininterval=0.5, leave=False)
