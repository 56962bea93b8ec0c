"""Figures from the live log for the dashboard and /v1/router/state: replay.report's per-task
metrics, plus model shares over time, computed in a worker thread and kept for a few seconds."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from ..replay.report import TaskReport, report
from ..store import read_log
from ..types import LoggedBatch
from .gateway import Gateway

__all__ = ["LiveFigures", "Shares", "live_figures"]

_BUCKETS = 24


@dataclass(frozen=True)
class Shares:
    """Share of each model among the answers in consecutive time buckets of one task."""

    start: float  # epoch seconds of the first bucket's start
    width_s: float
    models: tuple[str, ...]
    shares: np.ndarray  # (buckets, models); rows of buckets with no answer are all zero
    answered: np.ndarray  # answers per bucket


@dataclass(frozen=True)
class LiveFigures:
    computed_at: float
    requests: int
    reports: dict[str, TaskReport]  # per task, then "all"
    shares: dict[str, Shares] = field(default_factory=dict)


def _shares_over_time(batch: LoggedBatch, task: str) -> Shares:
    rows = (batch.tasks == task) & (batch.executed >= 0)
    ts = batch.ts[rows].astype(np.float64)  # epoch seconds
    executed = batch.executed[rows]
    used = tuple(int(m) for m in np.unique(executed))
    models = tuple(batch.models[m] for m in used)
    if not ts.size:
        return Shares(time.time(), 1.0, models, np.zeros((0, len(models))), np.zeros(0, dtype=np.int64))
    start, end = float(ts.min()), float(ts.max())
    width = max((end - start) / _BUCKETS, 1e-3)
    bucket = np.minimum(((ts - start) / width).astype(np.int64), _BUCKETS - 1)
    counts = np.zeros((_BUCKETS, len(used)), dtype=np.float64)
    for j, m in enumerate(used):
        counts[:, j] = np.bincount(bucket[executed == m], minlength=_BUCKETS)
    answered = counts.sum(axis=1)
    shares = np.divide(counts, answered[:, None], out=np.zeros_like(counts), where=answered[:, None] > 0)
    return Shares(start, width, models, shares, answered.astype(np.int64))


def _compute(gateway: Gateway) -> LiveFigures:
    batch = read_log(gateway.router.store)
    reports = report(batch, pass_threshold=gateway.settings.pass_threshold)
    tasks = [t for t in reports if t != "all"]
    return LiveFigures(time.time(), len(batch), reports, {t: _shares_over_time(batch, t) for t in tasks})


async def live_figures(gateway: Gateway) -> LiveFigures:
    """The figures, recomputed when older than server.dashboard_cache_s (one computation at a time)."""
    max_age = gateway.settings.dashboard_cache_s
    cache: LiveFigures | None = gateway.live
    if cache is not None and time.time() - cache.computed_at < max_age:
        return cache
    async with gateway.live_lock:
        cache = gateway.live
        if cache is None or time.time() - cache.computed_at >= max_age:
            cache = await asyncio.to_thread(_compute, gateway)
            gateway.live = cache
    return cache
