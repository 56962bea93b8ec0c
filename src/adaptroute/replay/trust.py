"""Which off-policy estimate to trust, and why: a reading of the effective sample size, the overlap
between the candidate and the logging policy, and whether the estimators agree.

Rules (the usual ones, e.g. Dudik et al. 2014 for DR, Wang et al. 2017 for Switch-DR):
- deterministic logging: no importance-weighted estimate exists; DM is the reward model alone;
- a small sample (under 30 decisions): nothing is reliable yet;
- good overlap (ESS at least 30 and 10% of the rows): DR, unbiased with the smallest variance of the
  unbiased estimators, and SNIPS beside it as the model-free check;
- poor overlap: Switch-DR, which leaves the rows with extreme importance weights to the reward model,
  is the safer reading; IPS and SNIPS rest on a handful of rows;
- ESS under 30: none of them; the estimate leans on the reward model (DM) and is indicative only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MIN_DECISIONS", "Advice", "advise"]

MIN_DECISIONS = 30  # below this many rows, no estimate and no interval means much
_GOOD_ESS_SHARE = 0.10


class _Interval(Protocol):
    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Advice:
    trusted: str | None  # an estimator name, or None when none can be trusted
    reason: str


def _overlap(a: _Interval, b: _Interval) -> bool:
    return a.low <= b.high and b.low <= a.high


def advise(estimates: dict[str, _Interval], *, n: int, ess: float, max_weight: float, deterministic: bool) -> Advice:
    """Which of ``estimates`` (keyed by estimator name: ips, snips, dm, dr, switch-dr) to trust."""
    if deterministic:
        return Advice(None, "the log was collected deterministically (probability 1 per decision): no importance-"
                            "weighted estimate exists and DM is the reward model alone; log with exploration "
                            "(a policy floor) to evaluate other policies")
    share = ess / n if n else 0.0
    facts = f"ESS {ess:.1f} of {n} decisions ({share:.0%}), largest importance weight {max_weight:.3g}"
    if n < MIN_DECISIONS:
        return Advice(None, f"only {n} decisions: too few for any estimate or interval to mean much ({facts})")
    if ess < MIN_DECISIONS:
        return Advice(None, f"{facts}: the candidate rarely chooses what the logging policy chose, so IPS and "
                            "SNIPS rest on a handful of rows and DR and Switch-DR on the reward model (DM); "
                            "treat every estimate as indicative only")
    if share >= _GOOD_ESS_SHARE:
        dr, snips = estimates.get("dr"), estimates.get("snips")
        if dr is None or snips is None or math.isnan(snips.value) or math.isnan(dr.value):
            check = "SNIPS, the model-free check, is undefined here"
        elif _overlap(dr, snips):
            check = "SNIPS, which uses no reward model, agrees within its interval"
        else:
            check = ("but SNIPS, which uses no reward model, disagrees with it: the reward model may be off, "
                     "so read both")
        return Advice("dr", f"good overlap ({facts}): DR is unbiased with the smallest variance here; {check}")
    return Advice("switch-dr", f"partial overlap ({facts}): Switch-DR leaves the rows with extreme weights to the "
                               "reward model, so it is steadier than DR, IPS and SNIPS, which those few rows sway")
