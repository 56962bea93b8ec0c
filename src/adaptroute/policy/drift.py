"""Change detection per model: notice when a model's outcomes stop matching what was learned of it.

Every observation is compared with the model's own prediction for that context before it is learned:
z = (y - predicted) / predictive sd, per target (quality, cost, latency, failure), clipped to +-3 so that
one freak outcome cannot fire on its own. A two-sided CUSUM per model and target accumulates
``z - slack`` (and ``-z - slack``); when one passes ``threshold`` the model has changed, and the
observations since that CUSUM last stood at zero (the estimated start of the change) are the only ones
the model keeps: its older statistics are dropped and rebuilt from the recent ones this detector holds.

A favourite that degrades by 0.3 in quality (about 1 sd of a pass/fail score) is caught within a few
dozen of its requests; a 10x price change within a handful. With slack 0.5 and threshold 8, an unchanged
model with normal residuals raises a false alarm about once in 10^4 of its observations per target
(Siegmund's approximation), and a false alarm costs little: the model keeps its recent outcomes and the
posterior widens until it has re-earned its place.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DriftDetector"]


class DriftDetector:
    """Two-sided CUSUM per (model, target) over standardized prediction residuals, plus each model's
    most recent ``memory`` observations (context, targets, clock tick) to rebuild it from on a change."""

    def __init__(self, n_targets: int, *, slack: float = 0.5, threshold: float = 8.0, memory: int = 256) -> None:
        self.n_targets = n_targets
        self.slack = float(slack)
        self.threshold = float(threshold)
        self.memory = int(memory)
        self.up = np.zeros((0, n_targets))
        self.down = np.zeros((0, n_targets))
        self.start = np.zeros((0, n_targets))  # tick after which each CUSUM last stood at zero
        self._x: list[list[np.ndarray]] = []
        self._y: list[list[np.ndarray]] = []
        self._tick: list[list[float]] = []
        self.changes: list[tuple[int, float]] = []  # (arm, tick the change is estimated to start) per alarm

    def add_arm(self) -> None:
        t = self.n_targets
        self.up = np.vstack([self.up, np.zeros((1, t))])
        self.down = np.vstack([self.down, np.zeros((1, t))])
        self.start = np.vstack([self.start, np.zeros((1, t))])
        self._x.append([])
        self._y.append([])
        self._tick.append([])

    def observe(self, arm: int, tick: float, z: np.ndarray) -> float | None:
        """Feed one observation's standardized residuals; return the tick the change started at when an
        alarm fires (the CUSUMs of that model then restart), else None."""
        z = np.clip(z, -3.0, 3.0)
        up = np.maximum(self.up[arm] + z - self.slack, 0.0)
        down = np.maximum(self.down[arm] - z - self.slack, 0.0)
        idle = (up == 0.0) & (down == 0.0)
        self.start[arm] = np.where(idle, tick, self.start[arm])
        fired = (up > self.threshold) | (down > self.threshold)
        if fired.any():
            since = float(self.start[arm][fired].min())
            self.up[arm] = 0.0
            self.down[arm] = 0.0
            self.start[arm] = tick
            self.changes.append((arm, since))
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
        self.start = np.zeros((k, self.n_targets))
        self._x = [[] for _ in range(k)]
        self._y = [[] for _ in range(k)]
        self._tick = [[] for _ in range(k)]
