"""`adaptroute demo`: the real Router on a generated workload, offline (see run.py), with what it should
find computed on the objective the router learns (expected.py) and a mid-run price cut (change.py)."""

from .change import Following, PriceChange
from .expected import Candidate, TaskTarget, expected_targets
from .run import DEMO_WEIGHTS, DemoSummary, demo_controls, load_profile, run_demo

__all__ = ["DEMO_WEIGHTS", "Candidate", "DemoSummary", "Following", "PriceChange", "TaskTarget", "demo_controls",
           "expected_targets", "load_profile", "run_demo"]
