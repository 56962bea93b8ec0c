"""Model priors from a JSON file: what is known of each model before its first request.

    {"gpt-4o": {"quality": 0.9, "cost_usd": 0.004}, "llama-3-8b": {"quality": 0.6}}

``quality`` is an expected pass rate in [0, 1] (a leaderboard figure will do), ``cost_usd`` a typical
request's cost, ``latency_s`` a typical latency; any may be left out. ``simulate --priors`` uses it to
show, before shipping, what configuring them (``ModelSpec(expected_quality=...)``) would change.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import DatasetError
from ..policy import ModelPrior

__all__ = ["read_priors"]

_FIELDS = {"quality": (0.0, 1.0), "cost_usd": (0.0, math.inf), "latency_s": (0.0, math.inf)}


def read_priors(path: str | os.PathLike[str]) -> dict[str, ModelPrior]:
    """Read and validate a priors file; errors name the file, the model and the field."""
    source = Path(path)
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{source}: cannot read priors: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise DatasetError(f"{source}: expected a non-empty object mapping model names to priors")
    priors: dict[str, ModelPrior] = {}
    for model, fields in raw.items():
        if not isinstance(fields, dict):
            raise DatasetError(f"{source}: {model!r}: expected an object such as {{\"quality\": 0.8}}")
        unknown = sorted(set(fields) - set(_FIELDS))
        if unknown:
            raise DatasetError(f"{source}: {model!r}: unknown field(s) {unknown}; known: {sorted(_FIELDS)}")
        values: dict[str, float] = {}
        for name, value in fields.items():
            low, high = _FIELDS[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and low <= value <= high
            ):
                raise DatasetError(f"{source}: {model!r}: {name} must be a number in [{low}, {high}], got {value!r}")
            values[name] = float(value)
        priors[model] = ModelPrior(**values)
    return priors
