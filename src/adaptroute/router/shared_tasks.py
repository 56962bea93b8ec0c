"""One task vocabulary for every replica on a shared log.

The default featurizer gives each task a one-hot coordinate in the order it first sees tasks. Replicas
see tasks in different orders, and a feature vector is only comparable across replicas (for merging
their outcomes, for a retrain over all their rows) if every replica numbers tasks alike. So on a shared
log each new task is registered in the log's task table first (serialised there) and the featurizer
learns the tasks in the table's order: every replica's layout is a prefix of one global order.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..errors import ConfigError, StoreError

__all__ = ["SharedTasks"]

log = logging.getLogger("adaptroute.router")


class SharedTasks:
    """Keeps ``featurizer``'s task coordinates in the order of ``store``'s task table."""

    def __init__(self, featurizer: Any, store: Any) -> None:
        self._featurizer = featurizer
        self._store = store
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._unregistered = False  # tasks numbered here while the database was away
        self._follow(self._store.register_tasks(list(featurizer.tasks)), strict=True)

    def __call__(self, task: str) -> None:
        if task in self._known:
            return
        with self._lock:
            if task in self._known:
                return
            try:  # after an outage, the tasks numbered here meanwhile go first, in this replica's order
                order = self._store.register_tasks([*self._featurizer.tasks, task] if self._unregistered else [task])
                self._unregistered = False
            except StoreError as exc:  # the database is away: number it here for now, register it later
                log.error("adaptroute: task %r could not be registered in the shared log (%s): numbered by this "
                          "replica until the log is back", task, exc)
                self._featurizer.task_index(task)
                self._unregistered = True
                return
            self._follow(order, strict=False)

    def _follow(self, order: list[str], strict: bool) -> None:
        local = list(self._featurizer.tasks)
        if order[: len(local)] != local:
            if not strict:  # a request must not fail for it: say what it risks
                log.error("adaptroute: this replica numbers tasks %s, the shared log %s: merged features of these "
                          "tasks disagree until the replicas restart", local, order)
                self._known = set(order)
                return
            raise ConfigError(
                f"this router's featurizer numbers tasks {local}, but the shared log {self._store.path} numbers "
                f"them {order[: len(local) + 3]}...: give every replica the same HashingFeaturizer(tasks=[...]) "
                "order, or none, so that their feature vectors agree"
            )
        for task in order:
            self._featurizer.task_index(task)
        self._known = set(order)
