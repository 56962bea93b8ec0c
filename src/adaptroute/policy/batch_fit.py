"""Learning a whole batch of logged observations at once (retrain, warm start, replica sync).

The same statistics as learning them one by one, in the batch's order: each model's observations are
added as one sum, with their forgetting weights on the shared clock, and a detected change point drops
what came before it (see Policy.change_points).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..types import LoggedBatch

if TYPE_CHECKING:
    from .base import Policy

__all__: list[str] = []  # internal to adaptroute.policy


def learn_batch(policy: Policy, batch: LoggedBatch) -> None:
    """Policy.partial_fit's work (the caller holds the policy's lock)."""
    obs = batch.observations
    for model in batch.models:
        policy.add_model(model)
    if len(obs) == 0:
        return
    known = ~np.isnan(obs.quality)
    features = np.asarray(batch.features, dtype=float)
    contexts = obs.row[known]
    Y = np.column_stack(
        [obs.quality[known], obs.cost_usd[known], np.nan_to_num(obs.latency_s[known]), obs.failed[known].astype(float)]
    )
    arms_of = np.array([policy._models[m] for m in batch.models], dtype=np.intp)[obs.model[known]]
    if features.shape[1] > policy._arms.dim:
        policy._arms.grow(features.shape[1])
    pad = policy._arms.dim - features.shape[1]
    policy._sum += Y.sum(axis=0)
    policy._count += float(Y.shape[0])
    arms = policy._arms
    g = policy.discount
    # The forgetting clock ticks once per observation, in the batch's order (see ArmModels).
    ticks = arms.clock + 1.0 + np.arange(arms_of.shape[0], dtype=float)
    starts: dict[str, float] = {}
    for model, tick in policy.change_points:
        starts[model] = max(tick, starts.get(model, -np.inf))
    for arm in np.unique(arms_of):
        rows = np.flatnonzero(arms_of == arm)
        end = float(ticks[rows[-1]])
        keep_old = 1.0
        since = starts.get(policy.models[arm], -np.inf)
        if since > arms.clock:  # a change detected in this stretch: what came before it is not learned
            rows, keep_old = rows[ticks[rows] > since], 0.0
        # One model's contexts at a time: a copy of every observation's context at once doubled
        # the peak memory of a retrain on a large log.
        Xa, Ya = features[contexts[rows]], Y[rows]
        if pad:
            Xa = np.pad(Xa, ((0, 0), (0, pad)))
        w = g ** (end - ticks[rows]) if g < 1.0 else np.ones(rows.size)
        decay = keep_old * (g ** (end - arms.last[arm]) if g < 1.0 else 1.0)
        Xw = Xa * w[:, None]
        S_old = arms.P[arm] - arms.lam * np.eye(arms.dim)
        arms.set_statistics(int(arm), decay * S_old + Xw.T @ Xa, decay * arms.B[arm] + Xw.T @ Ya,
                            decay * arms.yy[arm] + (w[:, None] * Ya * Ya).sum(axis=0),
                            decay * arms.n[arm] + float(w.sum()))
        arms.seen[arm] += np.count_nonzero(arms_of == arm)
        arms.last[arm] = end
    arms.clock += float(arms_of.shape[0])
    policy._changed()
