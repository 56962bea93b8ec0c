"""Prometheus metrics of the gateway, kept in memory and written in Prometheus' text format.

Per task and model: requests (by HTTP status), provider errors (by error class), retries, fallbacks,
escalations, cost, tokens, and latency histograms (whole request, time to first token); per endpoint:
responses by status (401s and 413s included). Label values are bounded: models come from the config,
error classes from exception names, and tasks beyond ``max_tasks`` distinct names count as "_other".
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import defaultdict
from dataclasses import dataclass

from ..types import Attempt, RoutingRecord

__all__ = ["Metrics"]

# Seconds: a fast local model answers in a few ms, a long generation takes a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OTHER_TASK = "_other"

_HELP = {
    "adaptroute_requests_total": ("counter", "Chat completion requests that passed auth, by task, answering model and HTTP status."),
    "adaptroute_errors_total": ("counter", "Failed provider calls, by task, model and error class."),
    "adaptroute_retries_total": ("counter", "Same-model retries after a transient error."),
    "adaptroute_fallbacks_total": ("counter", "Calls to another model after an error (model: the fallback)."),
    "adaptroute_escalations_total": ("counter", "Calls to a stronger model after a low score (model: the stronger one)."),
    "adaptroute_cost_usd_total": ("counter", "Provider spend in US dollars."),
    "adaptroute_tokens_total": ("counter", "Tokens, by direction (in: prompt, out: completion)."),
    "adaptroute_request_latency_seconds": ("histogram", "Seconds from the routing decision to the answer the client got."),
    "adaptroute_time_to_first_token_seconds": ("histogram", "Streams: seconds to the first token of the answer."),
    "adaptroute_http_responses_total": ("counter", "HTTP responses of the gateway, by endpoint and status."),
    "adaptroute_in_flight_requests": ("gauge", "Chat completion requests being served now."),
}


@dataclass(slots=True)
class _Histogram:
    buckets: list[int]
    total: float = 0.0
    count: int = 0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


_LABELS = {
    "adaptroute_requests_total": ("task", "model", "status"),
    "adaptroute_errors_total": ("task", "model", "error_class"),
    "adaptroute_retries_total": ("task", "model"),
    "adaptroute_fallbacks_total": ("task", "model"),
    "adaptroute_escalations_total": ("task", "model"),
    "adaptroute_cost_usd_total": ("task", "model"),
    "adaptroute_tokens_total": ("task", "model", "direction"),
    "adaptroute_request_latency_seconds": ("task", "model"),
    "adaptroute_time_to_first_token_seconds": ("task", "model"),
    "adaptroute_http_responses_total": ("endpoint", "status"),
    "adaptroute_in_flight_requests": (),
}


class Metrics:
    def __init__(self, max_tasks: int = 100) -> None:
        self._max_tasks = max_tasks
        self._tasks: set[str] = set()
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[str, ...], float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: dict[str, dict[tuple[str, ...], _Histogram]] = defaultdict(dict)
        self.in_flight = 0

    def task_label(self, task: str) -> str:
        if task in self._tasks:
            return task
        with self._lock:
            if len(self._tasks) < self._max_tasks:
                self._tasks.add(task)
                return task
        return OTHER_TASK

    def response(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._counters["adaptroute_http_responses_total"][(endpoint, str(status))] += 1

    def request(self, task: str, status: int, record: RoutingRecord | None = None,
                attempts: tuple[Attempt, ...] = ()) -> None:
        """One finished chat completion: its record, or (failed) the attempts its error carries."""
        t = self.task_label(task)
        with self._lock:
            c = self._counters
            model = record.model if record is not None and record.model else "none"
            c["adaptroute_requests_total"][(t, model, str(status))] += 1
            for attempt in record.attempts if record is not None else attempts:
                m = attempt.model
                if attempt.error_class is not None:
                    c["adaptroute_errors_total"][(t, m, attempt.error_class)] += 1
                if attempt.role == "retry":
                    c["adaptroute_retries_total"][(t, m)] += 1
                elif attempt.role == "fallback":
                    c["adaptroute_fallbacks_total"][(t, m)] += 1
                elif attempt.role == "escalation":
                    c["adaptroute_escalations_total"][(t, m)] += 1
                c["adaptroute_cost_usd_total"][(t, m)] += attempt.cost_usd
                c["adaptroute_tokens_total"][(t, m, "in")] += attempt.tokens_in
                c["adaptroute_tokens_total"][(t, m, "out")] += attempt.tokens_out
            if record is not None and record.model is not None:
                self._observe("adaptroute_request_latency_seconds", (t, record.model), record.latency_s)
                if record.first_token_s is not None:
                    self._observe("adaptroute_time_to_first_token_seconds", (t, record.model), record.first_token_s)

    def _observe(self, name: str, key: tuple[str, ...], value: float) -> None:
        hist = self._histograms[name].get(key)
        if hist is None:
            hist = self._histograms[name][key] = _Histogram([0] * (len(LATENCY_BUCKETS) + 1))
        hist.buckets[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1  # le: value <= bound
        hist.total += value
        hist.count += 1

    def render(self) -> str:
        """Prometheus' text exposition format (version 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in _HELP.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                names = _LABELS[name]
                if kind == "gauge":
                    lines.append(f"{name} {self.in_flight}")
                elif kind == "counter":
                    for key, value in sorted(self._counters[name].items()):
                        lines.append(f"{name}{_labels(names, key)} {_number(value)}")
                else:
                    for key, hist in sorted(self._histograms[name].items()):
                        cumulative = 0
                        for bound, count in zip((*LATENCY_BUCKETS, math.inf), hist.buckets, strict=True):
                            cumulative += count
                            le = 'le="' + _number(bound) + '"'
                            lines.append(f"{name}_bucket{_labels(names, key, le)} {cumulative}")
                        lines.append(f"{name}_sum{_labels(names, key)} {_number(hist.total)}")
                        lines.append(f"{name}_count{_labels(names, key)} {hist.count}")
        return "\n".join(lines) + "\n"
