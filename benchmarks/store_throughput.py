"""Log throughput, DuckDB and PostgreSQL side by side in one run, and what replica sync costs.

    .venv/bin/python benchmarks/store_throughput.py [--runs 3] [--quick]

Writes experiments/results/store_throughput.md (not with --quick). The PostgreSQL server is a real
one started for the run (adaptroute.testing.postgres: pgserver's PostgreSQL 16, fsync on, data on
this machine's disk, loopback TCP). Records are those of benchmarks/bench.py (5 models, a failed
primary with a fallback on 3% of requests) with 41-float feature vectors, built before the clock starts.

The throughput rows are measured ``--runs`` times (DuckDB then PostgreSQL in each run, fresh files and
databases each time) and every run's figure is shown, with the median: on a shared machine one run
says little.

Rows:
- buffered: N outcomes (decision + attempts + outcome each) appended from one thread, then flush(),
  all timed: every row is committed when the clock stops.
- durable, 64 concurrent requests: 64 threads each log a decision and then its result, as a durable
  Router does around its call (with no call in between: the log's own ceiling). The decision is not
  waited for; the result returns once it and its decision are committed. Outcomes/s over all threads,
  and outcomes per commit (group commit). A durable DuckDB file commits to its journal (store.journal),
  and its rows reach the DuckDB file in background batches; the clock stops once every request is
  acknowledged, and the store's close() (the last batch into the file) is timed apart.
- durable, 1 thread: the same one request at a time (a commit per request).
- sync: a second replica merges M outcomes the first one logged (Router.sync(): the query, the
  transfer, and policy.update per observation).
- read_log: the whole buffered log read back from PostgreSQL (what retrain() across replicas reads).
- table size: bytes per logged request (decision + attempts + outcome) in PostgreSQL, indexes included.

Each row also gives the CPU time spent per 1,000 outcomes (this process's, plus the PostgreSQL server
processes'), and each run records the load average: on a shared machine the wall-clock rate depends on
what else runs, the CPU cost much less. "CPU-bound rate" is outcomes / (client + server CPU seconds):
what one core would do if nothing else ran (client and server in turn, no overlap).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import LOG_MODELS, RecordFactory  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results" / "store_throughput.md"
DIM = 41  # the default HashingFeaturizer's width with RouterBench's three tasks


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def records(n: int, seed: int = 0) -> list[tuple[Any, Any]]:
    rng = np.random.default_rng(seed)
    X = rng.random((512, DIM)).astype(np.float32)
    X[:, 0] = 1.0
    tasks = np.array(["extract", "tag", "draft"] * 171)[:512]
    return RecordFactory(X, tasks, seed=seed).make(n, time.time() - n * 1e-3)


_SERVER: Any = None  # the PostgreSQL server, whose processes' CPU time is counted too


def server_cpu() -> float:
    """CPU seconds of the postmaster and its children (backends, WAL writer, checkpointer) so far."""
    if _SERVER is None or _SERVER._process is None:
        return 0.0
    root, total = _SERVER._process.pid, 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == root or int(fields[1]) == root:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Clock:
    """Wall time, and CPU time of this process and of the database server, over a block."""

    def __enter__(self) -> Clock:
        gc.collect()
        self.cpu0, self.server0, self.t0 = time.process_time(), server_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.cpu0 + server_cpu() - self.server0


def buffered(store: Any, recs: list[tuple[Any, Any]]) -> tuple[float, float]:
    """outcomes/s, CPU seconds."""
    with Clock() as clock:
        for decision, record in recs:
            store.add_decision(decision)
            store.add_result(record)
        store.flush()
    return len(recs) / clock.wall, clock.cpu


def durable(store: Any, recs: list[tuple[Any, Any]], threads: int) -> tuple[float, float, float]:
    """outcomes/s, outcomes per commit, CPU seconds."""
    per = len(recs) // threads
    commits_before = store._group.commits

    def work(i: int) -> None:
        for decision, record in recs[i * per : (i + 1) * per]:
            store.add_decision(decision)  # durable: committed during the call, at the latest with the result
            store.add_result(record)  # returns once the result and its decision are committed

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    with Clock() as clock:
        for th in pool:
            th.start()
        for th in pool:
            th.join()
    commits = max(1, store._group.commits - commits_before)
    return per * threads / clock.wall, per * threads / commits, clock.cpu


def sync_cost(url: str, n: int) -> tuple[float, float]:
    """Seconds for a second replica to merge n outcomes logged by the first, and outcomes/s."""
    from adaptroute import Router
    from adaptroute.store import PostgresLogStore

    recs = records(n, seed=3)
    writer = PostgresLogStore(url, replica="bench-writer")
    reader = Router(list(LOG_MODELS), store=url, sync_interval_s=3600)  # syncs only when asked
    for decision, record in recs:
        writer.add_decision(decision)
        writer.add_result(record)
    writer.flush()
    with Clock() as clock:
        merged = reader.sync()
    seconds = clock.wall
    writer.close()
    reader.close()
    return seconds, merged / seconds


def table_bytes(url: str) -> tuple[int, float]:
    import psycopg

    with psycopg.connect(url) as con:
        rows = con.execute("SELECT count(*) FROM decisions").fetchone()[0]
        size = con.execute(
            "SELECT sum(pg_total_relation_size(t)) FROM unnest(ARRAY['decisions','attempts','outcomes','feedback',"
            "'batches']) AS t"
        ).fetchone()[0]
    return int(rows), float(size) / max(1, rows)


def fresh_database(server: Any, name: str) -> str:
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')
    return server.url.rsplit("/", 1)[0] + "/" + name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, nothing written")
    parser.add_argument("--runs", type=int, default=3, help="times the throughput rows are measured (default 3)")
    args = parser.parse_args()
    from adaptroute.store import LogStore, PostgresLogStore
    from adaptroute.testing.postgres import temporary_postgres

    n_buf = 20_000 if args.quick else 200_000
    n_dur = 64 * (10 if args.quick else 80)
    n_seq = 100 if args.quick else 300
    n_sync = 2_000 if args.quick else 20_000
    runs = max(1, args.runs)
    global _SERVER
    measures = [
        ("buffered", f"buffered, {n_buf:,} outcomes from one thread, incl. the final flush"),
        ("durable", f"durable, 64 concurrent requests ({n_dur:,} outcomes)"),
        ("sequential", f"durable, one request at a time ({n_seq} outcomes)"),
    ]
    targets = {("PostgreSQL", "buffered"): 50_000, ("PostgreSQL", "durable"): 5_000, ("DuckDB", "durable"): 5_000}
    got: dict[tuple[str, str], list[tuple[float, float, float]]] = {}  # (rate, cpu s, outcomes per commit)
    loads: list[tuple[float, float]] = []
    closes: dict[tuple[str, str], list[float]] = {}  # seconds in close(): the last batch into the file

    tmp = Path(tempfile.mkdtemp(prefix="adaptroute-bench-"))
    say(f"records: {n_buf:,} buffered, {n_dur:,} durable, {n_seq} sequential durable; {runs} runs")
    recs = {"buffered": records(n_buf, 0), "durable": records(n_dur, 1), "sequential": records(n_seq, 2)}
    with temporary_postgres() as server:
        _SERVER = server
        say(f"PostgreSQL {server.bin_dir} on port {server.port}")
        for run in range(1, runs + 1):
            load_before = os.getloadavg()[0]
            for backend in ("DuckDB", "PostgreSQL"):
                def open_log(name: str, **kw: Any) -> Any:
                    if backend == "DuckDB":
                        return LogStore(tmp / f"{name}-{run}.duckdb", **kw)
                    return PostgresLogStore(fresh_database(server, name), **kw)

                for key, what in measures:
                    say(f"run {run}/{runs} {backend}: {what}")
                    store = open_log(key, durable=key != "buffered")
                    if key == "buffered":
                        rate, cpu = buffered(store, recs[key])
                        per_commit = 0.0
                    else:
                        rate, per_commit, cpu = durable(store, recs[key], 64 if key == "durable" else 1)
                    closing = time.perf_counter()
                    store.close()
                    closes.setdefault((backend, key), []).append(time.perf_counter() - closing)
                    got.setdefault((backend, key), []).append((rate, cpu, per_commit))
                    say(f"  {rate:,.0f} outcomes/s" + (f", {per_commit:.0f} outcomes per commit" if key == "durable" else ""))
            loads.append((load_before, os.getloadavg()[0]))

        rows: list[tuple[str, ...]] = []
        for backend in ("DuckDB", "PostgreSQL"):
            for key, what in measures:
                n = len(recs[key])
                results = got[(backend, key)]
                rates = [r for r, _, _ in results]
                median = statistics.median(rates)
                cpus = " / ".join(f"{1000 * c / n:.3f}" for _, c, _ in results)
                bound = statistics.median(n / c for _, c, _ in results if c > 0) if any(c > 0 for _, c, _ in results) else 0
                if key == "durable":
                    what += f"; {statistics.median(p for _, _, p in results):.0f} outcomes per commit"
                    what += f"; then close() {1000 * statistics.median(closes[(backend, key)]):.0f} ms"
                target = targets.get((backend, key))
                if target is None:
                    goal = "no slower than before" if key == "buffered" else "(reference)"
                else:
                    hits = sum(r >= target for r in rates)
                    goal = f">= {target:,}/s: {'met' if median >= target else 'not met'} ({hits} of {len(rates)} runs)"
                rows.append((backend, what, " / ".join(f"{r:,.0f}" for r in rates), f"{median:,.0f}/s", cpus,
                             f"{bound:,.0f}/s", goal))

        say(f"PostgreSQL: a replica merging {n_sync:,} outcomes of another")
        seconds, rate = sync_cost(fresh_database(server, "sync"), n_sync)
        extra: list[tuple[str, ...]] = [("PostgreSQL", f"replica sync: merge {n_sync:,} outcomes of another replica "
                                         "(query + policy.update)", f"{seconds:.2f} s", f"{rate:,.0f} outcomes/s", "", "",
                                         "(cost per replica per sync)")]
        from adaptroute import read_log

        buffered_url = server.url.rsplit("/", 1)[0] + "/buffered"
        with Clock() as clock:
            n_read = len(read_log(buffered_url))
        extra.append(("PostgreSQL", f"read_log of the last buffered log ({n_read:,} decisions: what a retrain reads)",
                      f"{clock.wall:.1f} s", f"{n_read / clock.wall:,.0f} decisions/s", f"{1000 * clock.cpu / n_read:.3f}",
                      f"{n_read / clock.cpu:,.0f}/s" if clock.cpu > 0 else "-", ""))
        count, per_row = table_bytes(buffered_url)
        extra.append(("PostgreSQL", f"table size after the buffered run ({count:,} requests, indexes included)",
                      f"{per_row:,.0f} bytes per request", "", "", "", ""))
        _SERVER = None
    table = ["| store | measure | outcomes/s, wall clock, each run | median | CPU s per 1,000 outcomes, each run "
             "| CPU-bound rate (median) | target |", "|---|---|---|---|---|---|---|"]
    table += ["| " + " | ".join(r) + " |" for r in rows + extra]
    table.append("")
    table.append("Load average (1 min) before and after each run, on "
                 f"{os.cpu_count()} cores: " + "; ".join(f"run {i}: {a:.1f} -> {b:.1f}" for i, (a, b) in enumerate(loads, 1)) + ".")
    text = "\n".join(table)
    print(text)
    if not args.quick:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        RESULTS.write_text(f"# Log throughput (benchmarks/store_throughput.py --runs {runs}, {stamp}, {os.cpu_count()} cores)\n\n"
                           f"{text}\n")
        say(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
