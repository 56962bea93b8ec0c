"""Change detection per model: notice when a model's outcomes stop matching what was learned of it.

Every observation is compared with the model's own prediction for that context before it is learned,
and a two-sided CUSUM per model and target accumulates the evidence that the outcomes moved away from it:

- quality and failure live in [0, 1] (mostly pass/fail): the CUSUM adds the Bernoulli log-likelihood
  ratio of "the rate moved by ``shift`` (0.15) up or down" (at most halfway to 1 or to 0) against "it
  is what was predicted", which stays calibrated for skewed rates (a 0.9 model's rare failures are
  not mistaken for a change);
- cost and latency: standardized residuals z (clipped to +-3, so one freak outcome cannot fire alone)
  minus a slack of 1 sd. Costs that vary with prompt length have heavy tails: with a slack of 0.5 sd,
  RouterBench streamed 4 times raised 8 false alarms in 10 seeds, each of which dropped what was
  learned of that model's quality too; with 1 sd, 1. A price change worth noticing moves z by far
  more than that (a 10x cut: caught within a handful of requests).

Only targets the reward weighs are watched: a latency that moves under a reward that ignores latency
changes no decision, and an alarm on it would still drop what was learned of the model's quality (an
eval set without latencies, then live calls of a few ms, did exactly that).

When a CUSUM passes ``threshold`` (10: under no change, a false alarm per target about once in e^10 ~
22,000 of a model's observations), the model has changed: the observations since that CUSUM last stood
at zero (the estimated start of the change) are the only ones it keeps, its older statistics are
dropped and rebuilt from the recent ones this detector holds. A favourite whose pass rate drops by 0.3
is caught within about 40 of its requests, a 10x price change within a handful. Thompson sampling then
also reopens its exploring share for a while (ThompsonSampling.explore_share): the other models were
judged against a field that just moved.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MEMORY", "DriftDetector"]

MEMORY = 256  # observations of each model kept to rebuild it from after a change


class DriftDetector:
    """Two-sided CUSUM per (model, target) over standardized prediction residuals, plus each model's
    most recent ``memory`` observations (context, targets, clock tick) to rebuild it from on a change."""

    def __init__(self, n_targets: int, bounded: np.ndarray, *, shift: float = 0.15, slack: float = 1.0,
                 threshold: float = 10.0, memory: int = MEMORY) -> None:
        self.n_targets = n_targets
        self.bounded = np.asarray(bounded, dtype=bool)  # (T,) targets in [0, 1]: Bernoulli evidence
        self.shift = float(shift)
        self.slack = float(slack)
        self.threshold = float(threshold)
        self.memory = int(memory)
        self.up = np.zeros((0, n_targets))
        self.down = np.zeros((0, n_targets))
        self.start_up = np.zeros((0, n_targets))  # tick after which each CUSUM last stood at zero
        self.start_down = np.zeros((0, n_targets))
        self._x: list[list[np.ndarray]] = []
        self._y: list[list[np.ndarray]] = []
        self._tick: list[list[float]] = []

    def add_arm(self) -> None:
        t = self.n_targets
        self.up = np.vstack([self.up, np.zeros((1, t))])
        self.down = np.vstack([self.down, np.zeros((1, t))])
        self.start_up = np.vstack([self.start_up, np.zeros((1, t))])
        self.start_down = np.vstack([self.start_down, np.zeros((1, t))])
        self._x.append([])
        self._y.append([])
        self._tick.append([])

    def evidence(self, y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per target, the log-likelihood ratio of one observation for "it moved up" and "it moved down"."""
        p0 = np.clip(mean, 1e-3, 1.0 - 1e-3)
        # The alternatives stay on their side of p0 and inside (0, 1): at most halfway to 1 (or 0), so a
        # rate at 0.99 (or a failure rate at 0) is never taken for a change because of a clip.
        up_p = np.minimum(p0 + self.shift, (1.0 + p0) / 2.0)
        down_p = np.maximum(p0 - self.shift, p0 / 2.0)
        q = np.clip(y, 0.0, 1.0)

        def llr(p1: np.ndarray) -> np.ndarray:
            return q * np.log(p1 / p0) + (1.0 - q) * np.log((1.0 - p1) / (1.0 - p0))

        z = np.clip((y - mean) / sd, -3.0, 3.0)
        return (np.where(self.bounded, llr(up_p), z - self.slack),
                np.where(self.bounded, llr(down_p), -z - self.slack))

    def observe(self, arm: int, tick: float, y: np.ndarray, mean: np.ndarray, sd: np.ndarray,
                watched: np.ndarray | None = None) -> float | None:
        """Feed one observation (targets ``y`` against the model's predicted ``mean`` and predictive
        ``sd``); return the tick the change started at when an alarm fires (that model's CUSUMs then
        restart), else None. Only the ``watched`` targets (default: all) gather evidence."""
        rise, fall = self.evidence(y, mean, sd)
        if watched is not None:
            rise, fall = np.where(watched, rise, 0.0), np.where(watched, fall, 0.0)
        up = np.maximum(self.up[arm] + rise, 0.0)
        down = np.maximum(self.down[arm] + fall, 0.0)
        self.start_up[arm] = np.where(up == 0.0, tick, self.start_up[arm])
        self.start_down[arm] = np.where(down == 0.0, tick, self.start_down[arm])
        fired_up, fired_down = up > self.threshold, down > self.threshold
        if fired_up.any() or fired_down.any():
            since = float(np.concatenate([self.start_up[arm][fired_up], self.start_down[arm][fired_down]]).min())
            self.up[arm] = 0.0
            self.down[arm] = 0.0
            self.start_up[arm] = tick
            self.start_down[arm] = tick
            return since
        self.up[arm], self.down[arm] = up, down
        return None

    def remember(self, arm: int, tick: float, x: np.ndarray, y: np.ndarray) -> None:
        xs, ys, ticks = self._x[arm], self._y[arm], self._tick[arm]
        xs.append(x)
        ys.append(y)
        ticks.append(tick)
        if len(ticks) > self.memory:
            del xs[0], ys[0], ticks[0]

    def recent(self, arm: int, since: float, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The remembered observations of ``arm`` after tick ``since``: contexts (m, dim), targets (m, T)
        and ticks (m,)."""
        ticks = np.asarray(self._tick[arm], dtype=float)
        keep = np.flatnonzero(ticks > since)
        X = np.zeros((keep.shape[0], dim))
        for row, i in enumerate(keep):
            x = self._x[arm][i]
            X[row, : x.shape[0]] = x
        Y = np.array([self._y[arm][i] for i in keep]).reshape(keep.shape[0], self.n_targets)
        return X, Y, ticks[keep]

    def reset(self) -> None:
        """Forget every CUSUM and remembered observation (a refit starts them afresh)."""
        k = self.up.shape[0]
        self.up = np.zeros((k, self.n_targets))
        self.down = np.zeros((k, self.n_targets))
        self.start_up = np.zeros((k, self.n_targets))
        self.start_down = np.zeros((k, self.n_targets))
        self._x = [[] for _ in range(k)]
        self._y = [[] for _ in range(k)]
        self._tick = [[] for _ in range(k)]
