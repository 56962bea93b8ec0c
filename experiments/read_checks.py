"""What read_log's checks (store.validate: tables, values, repeated decision ids) cost: a generated
log of N decisions (benchmarks/bench.py's records) read with the checks and with them switched off.

    .venv/bin/python experiments/read_checks.py [--decisions 300000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import bench  # noqa: E402 - the benchmark's record factory

import adaptroute.store.reader as reader  # noqa: E402
from adaptroute.store import LogStore, read_log  # noqa: E402


def best_of(path: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        read_log(path)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=300_000)
    n = parser.parse_args().decisions
    X = np.random.default_rng(0).normal(size=(1000, 38))
    X[:, 0] = 1
    factory = bench.RecordFactory(X, np.array([f"t{i % 8}" for i in range(1000)]))
    path = os.path.join(tempfile.mkdtemp(), "log.duckdb")
    with LogStore(path) as store:
        for start in range(0, n, 50_000):
            for decision, record in factory.make(min(50_000, n - start), 1.7e9 + start):
                store.add_decision(decision)
                store.add_result(record)
    checked = best_of(path)
    reader.check_values = lambda *a, **k: None  # type: ignore[assignment]
    reader._REPEATS = "SELECT 0"
    reader._check_tables = lambda *a: None  # type: ignore[assignment]
    unchecked = best_of(path)
    print(f"| read_log of {n:,} decisions | best of 3 |\n|---|---|")
    print(f"| with the checks | {checked:.2f} s |\n| checks switched off | {unchecked:.2f} s |")


if __name__ == "__main__":
    main()
