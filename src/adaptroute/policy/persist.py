"""Policy files: one NPZ holding arrays and a JSON header. Loaded with allow_pickle=False, validated,
and written atomically (temporary file + rename), so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RewardWeights
from ..errors import PolicyStateError
from ..types import TARGETS
from .base import Policy

__all__ = ["load_policy", "save_policy"]

FORMAT = "adaptroute.policy"
FORMAT_VERSION = 1
_ARRAYS = ("P", "B", "yy", "n", "configured", "pooled_sum")
_CLOCK_ARRAYS = ("seen", "last")  # since the forgetting clock; files without them load as never faded
# What a policy file may ask us to allocate: a file is user input (a hostile one can declare a 16 TiB
# array in a few bytes of header).
MAX_ARRAY_BYTES = 1 << 30  # all arrays together
MAX_HEADER_CHARS = 1 << 20  # the JSON header


def _check_sizes(source: Path) -> None:
    """Read every member's .npy header (shape, dtype) and refuse a file whose arrays would be too big,
    before any of them is read."""
    total = 0
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            with archive.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)  # the header only
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise PolicyStateError(f"{source}: invalid policy file: {info.filename} has .npy format {version}")
            if dtype.hasobject:
                raise PolicyStateError(f"{source}: invalid policy file: {info.filename} holds pickled Python objects (policy files load with allow_pickle=False)")
            size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            if info.filename.startswith("header") and size > 4 * MAX_HEADER_CHARS:
                raise PolicyStateError(f"{source}: invalid policy file: its header declares {size:,} bytes (at most {4 * MAX_HEADER_CHARS:,})")
            total += size
    if total > MAX_ARRAY_BYTES:
        raise PolicyStateError(f"{source}: invalid policy file: its arrays declare {total:,} bytes, more than {MAX_ARRAY_BYTES:,}")


def save_policy(policy: Policy, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``policy`` (and JSON-serialisable ``metadata``, such as the featurizer) to ``path``."""
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot save the policy to {target}: folder {target.parent} does not exist")
    with policy._lock:
        arms = policy._arms
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "policy": policy.name,
            "params": policy.params(),
            "weights": policy.weights.model_dump(),
            "version": policy.version,
            "models": list(policy.models),
            "targets": list(TARGETS),
            "pooled_count": policy._count,
            "clock": arms.clock,
            "change_points": [[m, t] for m, t in policy.change_points],
            "reopened_at": policy.reopened_at,
            "metadata": metadata or {},
        }
        arrays = {
            "P": arms.P,
            "B": arms.B,
            "yy": arms.yy,
            "n": arms.n,
            "configured": policy._configured,
            "pooled_sum": policy._sum,
            "seen": arms.seen,
            "last": arms.last,
        }
        fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, header=np.array(json.dumps(header)), **arrays)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


def load_policy(path: str | os.PathLike[str]) -> tuple[Policy, dict[str, Any]]:
    """Read a policy file written by save_policy. Anything else is refused with PolicyStateError."""
    source = Path(path)
    try:
        _check_sizes(source)
        with np.load(source, allow_pickle=False) as data:
            header = json.loads(str(data["header"][()]))
            arrays = {name: np.array(data[name]) for name in _ARRAYS}
            arrays.update({name: np.array(data[name]) for name in _CLOCK_ARRAYS if name in data.files})
    except PolicyStateError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyStateError(f"{source}: not a readable adaptroute policy file ({type(exc).__name__}: {exc})") from None
    return _build(source, header, arrays)


def _build(source: Path, header: Any, arrays: dict[str, np.ndarray]) -> tuple[Policy, dict[str, Any]]:
    def bad(why: str) -> PolicyStateError:
        return PolicyStateError(f"{source}: invalid policy file: {why}")

    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise bad("missing or foreign header")
    if header.get("format_version") != FORMAT_VERSION:
        raise bad(f"format version {header.get('format_version')!r}, this adaptroute reads {FORMAT_VERSION}")
    if header.get("targets") != list(TARGETS):
        raise bad(f"targets {header.get('targets')!r} differ from {list(TARGETS)}")
    cls = Policy.registry.get(str(header.get("policy")))
    if cls is None:
        raise bad(f"unknown policy {header.get('policy')!r}")
    models = header.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models) or len(set(models)) != len(models):
        raise bad("models must be a list of distinct names")
    k, t = len(models), len(TARGETS)
    P, B = arrays["P"], arrays["B"]
    d = P.shape[1] if P.ndim == 3 else -1
    arrays.setdefault("seen", arrays["n"])
    arrays.setdefault("last", np.zeros(k))
    expected = {"P": (k, d, d), "B": (k, d, t), "yy": (k, t), "n": (k,), "configured": (k, t), "pooled_sum": (t,),
                "seen": (k,), "last": (k,)}
    for name, shape in expected.items():
        if arrays[name].shape != shape or arrays[name].dtype.kind != "f":
            raise bad(f"array {name} has shape {arrays[name].shape} ({arrays[name].dtype}), expected {shape} floats")
    for name in ("P", "B", "yy", "n", "pooled_sum", "seen", "last"):
        if not np.all(np.isfinite(arrays[name])):
            raise bad(f"array {name} holds NaN or infinite values")
    if np.any(arrays["n"] < 0) or not np.allclose(P, np.swapaxes(P, 1, 2)):
        raise bad("negative counts or a non-symmetric precision matrix")
    for i in range(k):  # a precision matrix is positive definite, or the posterior is not a distribution
        try:
            np.linalg.cholesky(P[i])
        except np.linalg.LinAlgError:
            raise bad(f"precision matrix of {models[i]!r} is not positive definite") from None
    try:
        weights = RewardWeights(**header["weights"])
        policy = cls(weights=weights, **header["params"])
        count = float(header["pooled_count"])
        version = int(header["version"])
        clock = float(header.get("clock", 0.0))
        change_points = [(str(m), float(t)) for m, t in header.get("change_points", [])]
        reopened = header.get("reopened_at")
        reopened_at = None if reopened is None else float(reopened)
        if not np.isfinite(clock) or not np.isfinite(reopened_at if reopened_at is not None else 0.0):
            raise ValueError("the clock and reopened_at must be finite numbers")
    except (TypeError, ValueError, KeyError) as exc:
        raise bad(f"bad parameters ({exc})") from None
    for model in models:
        policy.add_model(model)
    arms = policy._arms
    arms.grow(d)
    policy._configured = arrays["configured"]
    policy._sum = arrays["pooled_sum"]
    policy._count = count
    eye = arms.lam * np.eye(d)
    for i in range(k):
        try:
            arms.set_statistics(i, P[i] - eye, B[i], arrays["yy"][i], float(arrays["n"][i]))
        except np.linalg.LinAlgError:
            raise bad(f"precision matrix of {models[i]!r} is singular") from None
    arms.seen, arms.last, arms.clock = arrays["seen"], arrays["last"], clock
    policy.change_points = change_points
    policy.reopened_at = reopened_at
    policy._changed()
    policy.version = version
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise bad("metadata must be an object")
    return policy, metadata
