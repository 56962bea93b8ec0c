"""Replicas that learn together: every ``sync_interval_s``, a router on a shared (PostgreSQL) log learns
the outcomes the other replicas committed since it last looked, through the policy's public update()
and revise(), in the order their outcomes were logged.

Why this is exact: the policies are Bayesian linear models whose state is sums of per-observation
terms (X'X, X'y, y'y, counts). Adding another replica's observations gives the state one process would
hold after seeing all of them, whatever the interleaving. With discounting (discount < 1: one
forgetting clock that ticks once per observation) order matters: each replica learns its own outcomes
at once and the others' at the next sync, in the order they were logged, so an observation's weight
(discount to the power of the observations learned after it) can differ from a single process's by
a factor discount**k, k being the observations learned in between: at most the fleet's outcomes of
one sync interval. A retrain realigns the replicas: each refits the same rows in the same order.
Change detection (detect_changes) likewise sees every replica's outcomes, in this replica's order.

What is merged, per other replica's row: each attempt whose quality or failure is known (as
Learner.conclude learns it: a failure at the larger of its logged cost and the cost this replica
predicts for it), the successful calls' token counts (the base of the price priors), and feedback
(replacing the quality learned before: the previous feedback, else the scorer's). This replica's own
feedback on another replica's decision is merged too, since only the sync can learn it.

A router that starts on a log with rows, and every retrain(), refits from all replicas' rows in one
snapshot and continues from the batches that snapshot held: nothing counted twice, nothing missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AdaptRouteError
from ..store.reader import assemble_tables
from ..types import LoggedBatch, Outcome

if TYPE_CHECKING:
    from ..policy import Policy
    from .learning import Learner

__all__ = ["ReplicaSync"]

log = logging.getLogger("adaptroute.router")

_COST = 1  # index of cost in TARGETS


class ReplicaSync:
    """Merges the other replicas' outcomes into ``learner`` every ``interval_s`` (a daemon thread)."""

    def __init__(self, learner: Learner, store: Any, interval_s: float, after_merge: Callable[[], None]) -> None:
        self._learner = learner
        self._store = store
        self.interval_s = float(interval_s)
        self._after_merge = after_merge
        self._seen: dict[str, int] = {}  # replica -> last batch learned
        self._lock = threading.Lock()  # one sync or refit at a time
        self._stop = threading.Event()
        self.syncs = 0
        self.merged = 0  # observations merged from other replicas so far
        self.last_sync_s: float | None = None  # how long the last sync took
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="adaptroute-replica-sync", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
                if self.last_error is not None:
                    log.warning("adaptroute: replica sync works again")
                self.last_error = None
            except AdaptRouteError as exc:  # the database is away: decide from what is known, retry later
                if self.last_error is None:
                    log.error("adaptroute: replica sync failed, retrying every %.1f s: %s", self.interval_s, exc)
                self.last_error = str(exc)

    # -- merging ----------------------------------------------------------------------------------
    def sync(self) -> int:
        """Learn what the other replicas committed since the last sync; returns the observations merged."""
        with self._lock:
            started = time.perf_counter()
            changes = self._store.changes_since(self._seen)
            policy = self._learner.policy
            events: list[tuple[float, int, tuple[np.ndarray, str, Outcome, Outcome | None, str | None]]] = []
            calls, tokens_in, tokens_out = 0, 0.0, 0.0
            for a in changes.attempts:
                if not a.failed:
                    calls += 1
                    tokens_in += a.tokens_in
                    tokens_out += a.tokens_out
                    if a.quality is None:
                        continue  # quality arrives later, through feedback
                    outcome = Outcome(a.quality, a.cost_usd, a.latency_s)
                elif a.counts_against_model:
                    outcome = Outcome(0.0, max(a.cost_usd, _expected_cost(policy, a.features, a.model)), a.latency_s,
                                      failed=True)
                else:
                    continue
                events.append((a.ts, 0, (a.features, a.model, outcome, None, None)))
            for f in changes.feedback:
                new = Outcome(f.quality, f.cost_usd, f.latency_s)
                old = None if f.learned_before is None else Outcome(f.learned_before, f.cost_usd, f.latency_s)
                events.append((f.ts, 1, (f.features, f.model, new, old, f.decision_id)))
            events.sort(key=lambda e: (e[0], e[1]))
            known = set(policy.models)
            updates = [e[2] for e in events if e[2][3] is None or e[2][1] in known]  # revise needs the model
            n = self._learner.merge(updates, calls, tokens_in, tokens_out)
            self._seen.update(changes.heads)
            self.syncs += 1
            self.merged += n
            self.last_sync_s = time.perf_counter() - started
        if n or calls:
            self._after_merge()
        return n

    def catch_up(self) -> None:
        """A replica that starts on a log other replicas wrote learns it all first (a refit)."""
        if self._store.heads():
            self.refit()

    def refit(self, warm: LoggedBatch | None = None) -> Policy:
        """retrain() across every replica's rows: one snapshot of the log, and syncs continue from it."""
        with self._lock:
            heads: dict[str, int] = {}

            def read(store: Any) -> LoggedBatch:
                tables, found = store.read_tables_with_heads()
                heads.update(found)
                return assemble_tables(tables, store.path)

            policy = self._learner.retrain(read, warm=warm)
            self._seen = heads
        self._after_merge()
        return policy

    def status(self) -> dict[str, Any]:
        return {"interval_s": self.interval_s, "syncs": self.syncs, "merged": self.merged,
                "last_sync_s": self.last_sync_s, "last_error": self.last_error, "replicas_seen": dict(self._seen)}


def _expected_cost(policy: Policy, x: np.ndarray, model: str) -> float:
    """The cost this replica's policy predicts for ``model`` at ``x`` (what a failure is learned at)."""
    if model not in policy.models:
        return 0.0
    return float(policy.predict(x, [model]).means[0, _COST])
