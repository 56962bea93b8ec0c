"""The demo's mid-run change (a price cut, made with Router.update_model) and whether the router followed.

"Followed" is measured on the log, as a user would: the repriced model's share of the affected task's
first choices after the change, how many of that task's requests it took to get half of them (over a
trailing window), and the share in the last quarter of the task's post-change requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import ModelSpec
from ..errors import ConfigError
from ..types import LoggedBatch

__all__ = ["Following", "PriceChange", "following", "format_following"]

WINDOW = 30  # first choices over which "half of the task's traffic" is judged
MIN_WINDOW = 10  # ... and the fewest, right after the change


@dataclass(frozen=True, slots=True)
class PriceChange:
    """From request ``at`` (0-based, in arrival order) on, ``model`` costs these prices per token."""

    at: int
    model: str
    input_cost_per_token: float
    output_cost_per_token: float
    what: str

    @classmethod
    def from_profile(cls, data: Mapping[str, Any] | None, requests: int) -> PriceChange | None:
        """The profile's ``change`` section (``after_share`` of the requests), or None."""
        if not data:
            return None
        try:
            share = float(data["after_share"])
            change = cls(int(round(share * requests)), str(data["model"]), float(data["input_cost_per_token"]),
                         float(data["output_cost_per_token"]), str(data.get("what", "a price change")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid workload profile: change: {exc}") from None
        if not 0.0 < share < 1.0:
            raise ConfigError(f"invalid workload profile: change.after_share must be in (0, 1), got {share}")
        return change

    @property
    def prices(self) -> dict[str, tuple[float, float]]:
        return {self.model: (self.input_cost_per_token, self.output_cost_per_token)}

    def spec(self, old: ModelSpec) -> ModelSpec:
        """``old`` with the new prices (its other parameters kept)."""
        return old.model_copy(update={"input_cost_per_token": self.input_cost_per_token,
                                      "output_cost_per_token": self.output_cost_per_token})


@dataclass(frozen=True, slots=True)
class Following:
    """How the router followed a change on one task whose best model it changed."""

    task: str
    before: str  # best expected before the change
    after: str  # best expected after it
    share_before: float  # the new best's share of first choices in the last quarter before the change
    share_after: float  # ... in the last quarter of the task's requests after the change
    requests_to_half: int | None  # task requests after the change until it held half of a trailing window
    requests_after: int  # the task's requests after the change

    @property
    def followed(self) -> bool:
        return self.share_after > 0.5


def following(batch: LoggedBatch, task: str, before: str, after: str, ts: float) -> Following:
    """Measure on the log how the first choices of ``task`` moved to ``after`` from time ``ts`` on."""
    rows = np.flatnonzero(batch.tasks == task)
    rows = rows[np.argsort(batch.ts[rows], kind="stable")]
    hit = batch.chosen[rows] == batch.models.index(after) if after in batch.models else np.zeros(rows.size, bool)
    post = batch.ts[rows] >= ts
    pre_hits, post_hits = hit[~post], hit[post]
    quarter = lambda h: float(h[len(h) - max(1, len(h) // 4):].mean()) if len(h) else 0.0  # noqa: E731
    # the first post-change request closing a window (its last WINDOW requests since the change, at
    # least MIN_WINDOW) in which the new best had half of the first choices
    to_half = None
    for i in range(MIN_WINDOW, post_hits.size + 1):
        if post_hits[max(0, i - WINDOW): i].mean() >= 0.5:
            to_half = i
            break
    return Following(task, before, after, quarter(pre_hits), quarter(post_hits), to_half, int(post_hits.size))


def format_following(change: PriceChange, moves: list[Following], at_request: int) -> str:
    """The report's paragraph on the change."""
    price = f"${1e6 * change.input_cost_per_token:g}/${1e6 * change.output_cost_per_token:g} per million input/output tokens"
    lines = [f"Change at request {at_request:,}: {change.what} ({change.model} now {price}; made with "
             "Router.update_model(), logged by the adaptroute.router logger)."]
    if not moves:
        lines.append("It changes no task's best expected model.")
    for f in moves:
        half = (f"it had half of {f.task}'s first choices (over the last {WINDOW}, at least {MIN_WINDOW}, of its "
                f"requests since the change) by the {f.requests_to_half}th {f.task} request after the change"
                if f.requests_to_half is not None else f"it never had half of {WINDOW} requests in a row")
        verdict = "followed" if f.followed else "NOT followed"
        lines.append(f"- {f.task}: best expected moves from {f.before} to {f.after}. The router {verdict}: {f.after} took "
                     f"{100 * f.share_after:.0f}% of {f.task}'s first choices in the last quarter of its "
                     f"{f.requests_after} requests after the change (was {100 * f.share_before:.0f}% in the last quarter "
                     f"before); {half}.")
    return "\n".join(lines)
