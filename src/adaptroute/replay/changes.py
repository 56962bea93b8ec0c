"""Scheduled changes of the world during a simulation: a model degrades, gets cheaper, arrives or leaves.

A change is written ``PASS:MODEL:EFFECT``: from the start of pass PASS (1-based) the effect holds for
the rest of the run. MODEL is an exact model name of the data and may itself contain ``:`` (PASS is what
stands before the first ``:``, EFFECT what stands after the last). EFFECT is one of ``quality-=D``,
``quality+=D`` (added to that model's quality on every prompt, clipped to [0, 1]), ``cost*=F`` (its cost
multiplied by F), ``arrive`` (absent before PASS) and ``leave`` (absent from PASS on).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["Change", "World", "parse_change", "worlds"]

_EFFECT = re.compile(r"^(?:(?P<kind>quality[+-]=|cost\*=)(?P<value>.+)|(?P<event>arrive|leave))$")


@dataclass(frozen=True, slots=True)
class Change:
    start_pass: int  # 1-based
    model: str
    effect: str  # "quality", "cost", "arrive" or "leave"
    amount: float = 0.0  # the added quality (signed) or the cost factor

    def spec(self) -> str:
        if self.effect == "quality":
            return f"{self.start_pass}:{self.model}:quality{'+' if self.amount >= 0 else '-'}={abs(self.amount):g}"
        if self.effect == "cost":
            return f"{self.start_pass}:{self.model}:cost*={self.amount:g}"
        return f"{self.start_pass}:{self.model}:{self.effect}"


def parse_change(spec: str, models: Sequence[str], passes: int) -> Change:
    """Parse one ``PASS:MODEL:EFFECT`` spec against the data's model names and the number of passes."""
    where = f"--change {spec!r}"
    if spec.count(":") < 2:
        raise ConfigError(f"{where}: expected PASS:MODEL:EFFECT, e.g. 2:gpt-4o:quality-=0.3")
    head, rest = spec.split(":", 1)
    model, effect = rest.rsplit(":", 1)
    try:
        start = int(head)
    except ValueError:
        raise ConfigError(f"{where}: PASS must be a whole number of a pass (1-based), got {head!r}") from None
    if not 1 <= start <= passes:
        raise ConfigError(f"{where}: PASS must be between 1 and --passes ({passes}), got {start}")
    if model not in models:
        raise ConfigError(f"{where}: unknown model {model!r}; the data's models: {', '.join(models)}")
    match = _EFFECT.match(effect.strip())
    if match is None:
        raise ConfigError(f"{where}: unknown effect {effect!r}; one of quality-=D, quality+=D, cost*=F, arrive, leave")
    if match["event"]:
        if match["event"] == "arrive" and start == 1:
            raise ConfigError(f"{where}: a model that arrives at pass 1 is there from the start; arrive needs PASS >= 2")
        return Change(start, model, match["event"])
    try:
        value = float(match["value"])
    except ValueError:
        raise ConfigError(f"{where}: {match['value']!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: the amount must be finite, got {value}")
    if match["kind"].startswith("cost"):
        if not value > 0:
            raise ConfigError(f"{where}: a cost factor must be > 0, got {value}")
        return Change(start, model, "cost", value)
    if not 0 <= value <= 1:
        raise ConfigError(f"{where}: a quality change must be between 0 and 1, got {value}")
    return Change(start, model, "quality", value if match["kind"] == "quality+=" else -value)


@dataclass(frozen=True)
class World:
    """What holds during one pass: every model's quality and cost per prompt, and who is present."""

    quality: np.ndarray  # (n, K)
    cost_usd: np.ndarray  # (n, K)
    present: np.ndarray  # (K,) bool


def worlds(quality: np.ndarray, cost_usd: np.ndarray, models: Sequence[str], passes: int,
           changes: Sequence[Change]) -> list[World]:
    """The world of each pass, 0-based, with every change applied from its pass on (in pass order)."""
    index = {m: i for i, m in enumerate(models)}
    present = np.ones(len(models), dtype=bool)
    for change in changes:
        if change.effect == "arrive":
            present[index[change.model]] = False
    q, c = quality.astype(float), cost_usd.astype(float)
    out: list[World] = []
    for p in range(1, passes + 1):
        now = [ch for ch in changes if ch.start_pass == p]
        if now:
            q, c, present = q.copy(), c.copy(), present.copy()
        for change in now:
            k = index[change.model]
            if change.effect == "quality":
                q[:, k] = np.clip(q[:, k] + change.amount, 0.0, 1.0)
            elif change.effect == "cost":
                c[:, k] *= change.amount
            else:
                present[k] = change.effect == "arrive"
        if not present.any():
            raise ConfigError(f"no model is present in pass {p}: {', '.join(ch.spec() for ch in changes)}")
        out.append(World(q, c, present))
    return out
