"""Full-information datasets (every model's outcome known per prompt) for simulation and warm starts.

``load_dataset(path)`` picks the importer from the path:

- a folder of CSV files, or a ``.csv`` file whose header is RouterBench's wide layout (or that has
  ``<model>|total_cost`` columns and no ``model`` column) -> read_routerbench
- ``.pkl`` / ``.pickle`` -> read_routerbench (RouterBench's pandas pickle; refused unless allow_pickle=True)
- ``.parquet`` / ``.pq``, ``.jsonl`` / ``.ndjson``, or any other ``.csv`` -> read_long (long format)

``is_log_path(path)`` tells an adaptroute log (``.duckdb`` files, a glob of them, or a folder of Parquet
snapshots) from a dataset, so a command line can accept either.
"""

from __future__ import annotations

import csv
import glob as globbing
import os
import sys
from pathlib import Path

from ..errors import DatasetError
from .base import FullInfoDataset
from .longformat import LONG_COLUMNS, LONG_FORMATS, read_long, write_long
from .priors import read_priors
from .routerbench import is_routerbench_header, read_routerbench

__all__ = [
    "LONG_COLUMNS",
    "FullInfoDataset",
    "is_log_path",
    "is_routerbench_header",
    "load_dataset",
    "read_long",
    "read_priors",
    "read_routerbench",
    "write_long",
]

_PICKLE_SUFFIXES = (".pkl", ".pickle")
_GLOB_CHARS = "*?["


def load_dataset(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> FullInfoDataset:
    """Read a full-information dataset, choosing the importer from the path (see the module docs)."""
    source = Path(path)
    if not source.exists():
        raise DatasetError(f"{source}: no such file or folder")
    if is_log_path(source):
        raise DatasetError(
            f"{source}: this is an adaptroute log, not a full-information dataset: `adaptroute replay`, "
            "`report` and `tune` read logs (in Python, adaptroute.read_log)"
        )
    if source.is_dir():
        return read_routerbench(source)
    suffix = source.suffix.lower()
    if suffix in _PICKLE_SUFFIXES:
        return read_routerbench(source, allow_pickle=allow_pickle)
    if suffix == ".csv":
        header = _csv_header(source)
        # Wide if it says so, or if it has per-model cost columns (read_routerbench then names what is missing).
        if is_routerbench_header(header) or ("model" not in header and any(c.endswith("|total_cost") for c in header)):
            return read_routerbench(source)
        return read_long(source)
    if suffix in LONG_FORMATS:
        return read_long(source)
    raise DatasetError(
        f"{source}: unknown dataset format {source.suffix or '(no suffix)'!r}; expected a folder of RouterBench "
        f"CSV files, a .csv, .parquet or .jsonl file in long format ({', '.join(LONG_COLUMNS)}), or "
        "RouterBench's .pkl (with allow_pickle=True)"
    )


def is_log_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an adaptroute log: a ``.duckdb`` file, a glob of them, or a folder (or a glob
    of folders) holding ``decisions*.parquet`` snapshots, or a ``postgresql://`` URL. Nothing is opened."""
    text = os.fspath(path)
    if text.startswith(("postgresql://", "postgres://")):
        return True
    candidate = Path(text)
    if candidate.exists() or not any(c in text for c in _GLOB_CHARS):
        return _is_log(candidate)
    if text.lower().endswith(".duckdb"):
        return True  # a glob of log files, whether or not any exists yet
    return any(_is_log(Path(match)) for match in globbing.glob(text))


def _is_log(path: Path) -> bool:
    if path.suffix.lower() == ".duckdb":
        return not path.is_dir()
    return path.is_dir() and any(path.glob("decisions*.parquet"))


def _csv_header(path: Path) -> list[str]:
    csv.field_size_limit(sys.maxsize)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [h.strip() for h in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read as CSV ({type(exc).__name__}: {exc})") from None
