"""Replay full-information benchmark data through a policy that sees only what it chose.

Every model's outcome is known for every prompt, so any policy can be run as if live: at each step it
sees the context (task, and the prompt text when the data has it), picks a model with its own
probabilities and a seeded draw, and learns only the chosen model's outcome.

Long runs go over the data several times (``passes``), and the world may change between passes
(``changes``: a model degrades, gets cheaper, arrives or leaves; see replay.changes). Every pass is
reported against the references of the world as it was during that pass.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import RewardWeights
from ..datasets.base import FullInfoDataset
from ..errors import ConfigError, DatasetError
from ..features import Featurizer, HashingFeaturizer
from ..policy import ModelPrior, Policy, make_policy
from ..policy.constraints import QualityBar, default_weights
from ..reward import rewards
from .baselines import Reference, reference_points
from .changes import Change, World, worlds
from .constrained import Controls, run_controlled
from .per_task import per_task_summary

__all__ = ["PassResult", "SimulationResult", "featurize", "simulate"]


@dataclass(frozen=True, slots=True)
class PassResult:
    """One pass over the data, next to the references of the world during that pass."""

    n: int
    mean_quality: float
    mean_cost_usd: float
    mean_reward: float
    best_fixed_per_task_reward: float  # each task's best present model, in hindsight of this pass's world
    oracle_reward: float  # the best present model for every prompt
    models_present: int

    def to_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__slots__}


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
    per_pass: tuple[PassResult, ...] = ()
    changes: tuple[Change, ...] = ()
    chosen: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))  # model per step
    prompt_rows: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))  # data row per step
    rewards: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # reward obtained per step
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
            "per_pass": [p.to_dict() for p in self.per_pass],
            "changes": [c.spec() for c in self.changes],
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
    changes: Sequence[Change] = (),
    progress: bool = False,
    bar: QualityBar | float | dict[str, float] | str | None = None,
    budget_per_request: float | None = None,
    controls: Controls | None = None,
) -> SimulationResult:
    """Stream ``passes`` seeded shuffles of ``data`` through ``policy`` (a name or a fresh Policy), with
    ``priors`` (what is known of some models before their first request) set first and ``changes``
    applied from their pass on. A model absent from a pass is not eligible during it.

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
    n, models = len(data), data.models
    latency = np.zeros_like(data.cost_usd) if data.latency_s is None else data.latency_s
    passes_worlds = worlds(data.quality, data.cost_usd, models, passes, changes)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(n) for _ in range(passes)])
    chosen = np.empty(order.shape[0], dtype=np.int64)
    steps = iter(_progress(order, progress, f"simulate {agent.name}"))
    direct = agent.models == models  # the policy knows exactly the data's models, in the same order
    bars = np.full(order.shape[0], np.nan)
    if controls.active and not direct:
        raise ConfigError("operator controls need a policy that knows exactly the data's models")
    for p, world in enumerate(passes_worlds):
        if p and (world.present & ~passes_worlds[p - 1].present).any():
            agent.reopen()  # a model arrives, as router.add_model() says so to the policy
        targets = np.stack([world.quality, world.cost_usd, latency, np.zeros_like(latency)], axis=2)
        present = np.flatnonzero(world.present)
        every = present.shape[0] == len(models)
        names = tuple(models[i] for i in present)
        span = slice(p * n, (p + 1) * n)
        if controls.active:
            run_controlled(agent, X, data.tasks, targets, [next(steps) for _ in range(n)], weights, controls,
                           rng, chosen[span], bars[span], eligible=names, first_step=p * n)
            continue
        for step in range(p * n, (p + 1) * n):
            row = next(steps)
            x = X[row]
            if direct and every:  # nothing is logged here, so the policy may draw without probabilities
                k = agent.sample(x, rng)
            else:
                probs = agent.predict(x, names).probabilities
                k = int(present[min(int(probs.cumsum().searchsorted(rng.random() * probs.sum(), side="right")), len(names) - 1)])
            agent.update(x, models[k], targets[row, k])
            chosen[step] = k
    got = np.empty(order.shape[0])
    got_quality, got_cost = np.empty_like(got), np.empty_like(got)
    per_pass: list[PassResult] = []
    regret_oracle = regret_fixed = 0.0
    for p, world in enumerate(passes_worlds):
        span = slice(p * n, (p + 1) * n)
        rows, picks = order[span], chosen[span]
        R = _world_rewards(data, world, weights)
        result = _pass_result(data, world, R, rows, picks)
        per_pass.append(result)
        got[span] = result_rewards = R[rows, picks]
        got_quality[span], got_cost[span] = world.quality[rows, picks], world.cost_usd[rows, picks]
        regret_oracle += n * result.oracle_reward - float(result_rewards.sum())
        regret_fixed += n * result.best_fixed_per_task_reward - float(result_rewards.sum())
    shares = np.bincount(chosen, minlength=len(models)) / chosen.shape[0]
    return SimulationResult(
        policy=agent.name,
        weights=weights,
        seed=seed,
        passes=passes,
        n=int(order.shape[0]),
        skipped=data.skipped,
        mean_quality=float(got_quality.mean()),
        mean_cost_usd=float(got_cost.mean()),
        mean_latency_s=None if data.latency_s is None else float(data.latency_s[order, chosen].mean()),
        mean_reward=float(got.mean()),
        model_shares={m: float(s) for m, s in zip(models, shares, strict=True)},
        baselines=reference_points(data, weights),
        regret_vs_oracle=regret_oracle,
        regret_vs_best_fixed_per_task=regret_fixed,
        per_pass=tuple(per_pass),
        changes=tuple(changes),
        chosen=chosen,
        prompt_rows=order,
        rewards=got,
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


def _world_rewards(data: FullInfoDataset, world: World, weights: RewardWeights) -> np.ndarray:
    """(n, K) reward of every model on every prompt in ``world``; absent models get -inf."""
    R = rewards(world.quality, world.cost_usd, weights, data.latency_s)
    return np.where(world.present, R, -np.inf)


def _pass_result(data: FullInfoDataset, world: World, R: np.ndarray, rows: np.ndarray, picks: np.ndarray) -> PassResult:
    """``R``: the world's reward matrix (_world_rewards)."""
    fixed = np.empty(len(data))
    for task in np.unique(data.tasks):
        in_task = data.tasks == task
        fixed[in_task] = R[in_task, int(R[in_task].mean(axis=0).argmax())]
    return PassResult(
        n=int(rows.shape[0]),
        mean_quality=float(world.quality[rows, picks].mean()),
        mean_cost_usd=float(world.cost_usd[rows, picks].mean()),
        mean_reward=float(R[rows, picks].mean()),
        best_fixed_per_task_reward=float(fixed.mean()),
        oracle_reward=float(R.max(axis=1).mean()),
        models_present=int(world.present.sum()),
    )


def _progress(items: np.ndarray, show: bool, label: str) -> Any:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, file=sys.stderr, unit="prompt", mininterval=0.5, leave=False)
