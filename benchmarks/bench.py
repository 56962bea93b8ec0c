"""adaptroute performance benchmark: one run on this machine, one markdown table.

    make bench                      # or: .venv/bin/python benchmarks/bench.py [--quick] [--only 1,2]

Prints the table on stdout and writes it to experiments/results/performance.md; progress goes to
stderr. Every ratio is computed from figures measured in the same run. See benchmarks/README.md for
what each row measures. Benchmark-only peers (mabwiser, vowpalwabbit) come from the ``peers`` extra and
are never imported by the library.
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # litellm reads its bundled price table, no fetch

import argparse
import asyncio
import gc
import itertools
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "routerbench"
DEFAULT_OUT = REPO / "experiments" / "results" / "performance.md"
ROUTER_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "gpt-4.1-mini"]
LOG_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "gpt-4.1-mini", "o3-mini")  # the 1M-row log
WEIGHTS = "quality=1,cost=50"  # policy workloads (items 2, 3, 7): a real quality/cost trade-off
_START = time.perf_counter()


# -- small helpers ----------------------------------------------------------------------------------
def say(message: str) -> None:
    print(f"[{time.perf_counter() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


@dataclass
class Row:
    item: str
    what: str
    result: str
    target: str = ""
    met: bool | None = None  # None: no target


ROWS: list[Row] = []


def row(item: str, what: str, result: str, target: str = "", met: bool | None = None) -> None:
    ROWS.append(Row(item, what, result, target, met))
    say(f"  {item} {what}: {result}" + (f"  (target {target}: {'met' if met else 'MISSED'})" if target else ""))


def fail_row(item: str, what: str, exc: BaseException) -> None:
    text = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")[:300]
    row(item, what, f"**failed**: {text}")


def load_routerbench(path: Path) -> Any:
    from adaptroute.datasets import load_dataset

    return load_dataset(str(path))


def contexts(data: Any) -> np.ndarray:
    from adaptroute.features import HashingFeaturizer
    from adaptroute.replay.simulate import featurize

    return featurize(HashingFeaturizer(), data)


# -- 0: import ----------------------------------------------------------------------------------------
def bench_import(quick: bool) -> None:
    say("import: python -X importtime -c 'import adaptroute' (fresh interpreters)")
    runs = 3 if quick else 7
    totals, router_s = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import adaptroute"],
                              capture_output=True, text=True, check=True)
        for line in done.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == "adaptroute":
                totals.append(int(parts[1]) * 1e-6)
        code = ("import sys, time; t = time.perf_counter(); from adaptroute import Router; "
                "print(time.perf_counter() - t, 'litellm' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        router_s.append(float(out[0]))
        router_litellm = out[1] == "True"
    probe = "import sys, adaptroute; print('litellm' in sys.modules)"
    plain_litellm = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "True"
    row("0", "`import adaptroute` (-X importtime cumulative, median)", us(median(totals)))
    row("0", "litellm imported by `import adaptroute` / by `from adaptroute import Router`",
        f"{'yes' if plain_litellm else 'no'} / {'yes' if router_litellm else 'no'}", "no / no",
        not plain_litellm and not router_litellm)
    row("0", "`from adaptroute import Router` in a fresh interpreter (wall, median)", us(median(router_s)))


# -- 1: router overhead -------------------------------------------------------------------------------
def _prompts(data: Any, n: int = 64) -> list[tuple[list[dict[str, str]], str]]:
    rng = np.random.default_rng(11)
    rows = rng.choice(len(data), size=n, replace=False)
    return [([{"role": "user", "content": data.texts[i]}], str(data.tasks[i])) for i in rows]


def _check(messages: Any, response: Any) -> bool:  # a trivial scorer: any text at all passes
    return bool(response.choices[0].message.content)


def _litellm_logging_idle() -> Callable[[], bool]:
    """A probe: has litellm's background logging executor no task queued or running? (It runs a success
    handler for every call on a thread.) Reads two private attributes; without them it says idle."""
    try:
        from litellm.litellm_core_utils.thread_pool_executor import executor

        slots, cap = executor._pending_slots, executor._max_pending_tasks
        return lambda: slots._value >= cap
    except (ImportError, AttributeError):
        return lambda: True


def _interleaved(contestants: dict[str, Callable[[int, str], Any]], n: int, warmup: int,
                 label: str) -> dict[str, tuple[list[float], list[float]]]:
    """Every contestant once per round, the order rotating through every permutation. Per call: the
    time to return, and the time until litellm's background success handler for that call has run too.
    ``fn(i, model)`` returns the model it routed to (or None); the next round's bare calls use it.

    Why both: the handler (about half a millisecond of Python) takes the GIL whenever the main thread
    lets go of it. NumPy lets go on arrays over 500 elements, so after a routed call the handler runs
    inside adaptroute's post-call work (logging, learning), while after a bare call it runs once the
    clock has stopped. "Time to return" bills adaptroute for litellm's logging; "until the handler has
    run" bills every contestant for its own, the like-for-like comparison. Between calls the loop waits
    until the handler is done, so no call inherits the previous one's."""
    idle = _litellm_logging_idle()
    names = list(contestants)
    orders = list(itertools.permutations(names))
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in names}
    model = ROUTER_MODELS[0]
    clock = time.perf_counter
    for i in range(warmup + n):
        routed = model
        for name in orders[i % len(orders)]:
            t = clock()
            got = contestants[name](i, model)
            returned = clock()
            deadline = returned + 0.1
            while not idle() and clock() < deadline:
                time.sleep(0)  # hands the GIL to the handler
            settled = clock()
            if i >= warmup:
                times[name][0].append(returned - t)
                times[name][1].append(settled - t)
            if got is not None:
                routed = got
        model = routed
        if (i + 1) % 500 == 0:
            say(f"  {label}: {i + 1 - warmup if i >= warmup else 0}/{n}")
    return times


def bench_router(data: Any, quick: bool, tmp: Path) -> None:
    import litellm

    from adaptroute import Router

    litellm.suppress_debug_info = True
    prompts = _prompts(data)
    n, warmup = (300, 100) if quick else (2000, 300)
    timeout = 60.0  # RouterSettings.timeout_s default: the router passes it (and max_retries=0) to litellm

    def bare(i: int, model: str) -> None:
        messages, _ = prompts[i % len(prompts)]
        litellm.completion(model=model, messages=messages, mock_response="ok", timeout=timeout, max_retries=0)

    def bare_min(i: int, model: str) -> None:
        messages, _ = prompts[i % len(prompts)]
        litellm.completion(model=model, messages=messages, mock_response="ok")

    lrouter = litellm.Router(model_list=[{"model_name": m, "litellm_params": {"model": m}} for m in ROUTER_MODELS])

    def litellm_router(i: int, model: str) -> None:
        messages, _ = prompts[i % len(prompts)]
        lrouter.completion(model=model, messages=messages, mock_response="ok", timeout=timeout)

    configs = [("memory store, no scorer", ":memory:", None), ("memory store, trivial scorer", ":memory:", _check),
               ("file store, no scorer", "file", None), ("file store, trivial scorer", "file", _check)]
    for c, (label, store, scorer) in enumerate(configs):
        path = str(tmp / f"router{c}.duckdb") if store == "file" else store
        router = Router(models=ROUTER_MODELS, store=path, scorer=scorer, seed=c)

        def ours(i: int, model: str, router: Router = router) -> str:
            messages, task = prompts[i % len(prompts)]
            return router.complete(messages, task=task, mock_response="ok").adaptroute.model

        contestants: dict[str, Callable[[int, str], Any]] = {"adaptroute": ours, "bare": bare}
        if c == 0:
            contestants |= {"bare_min": bare_min, "litellm_router": litellm_router}
        say(f"1: Router.complete vs bare litellm.completion, {label}: {n} rounds, interleaved")
        t = _interleaved(contestants, n, warmup, label)
        router.close()

        def fig(name: str, k: int) -> str:
            return f"{us(median(t[name][k]))} / {us(p99(t[name][k]))}"

        def ratio(name: str, k: int, base: str = "bare") -> float:
            return median(t[name][k]) / median(t[base][k])

        if c == 0:
            row("1", "bare `litellm.completion(mock_response)`, with the router's timeout and max_retries=0: "
                "median / p99 to return; until litellm's background logging of the call is done",
                f"{fig('bare', 0)}; {fig('bare', 1)}")
            row("1", "bare `litellm.completion(model, messages, mock_response)` only: same two figures",
                f"{fig('bare_min', 0)}; {fig('bare_min', 1)}")
        r0, r1 = ratio("adaptroute", 0), ratio("adaptroute", 1)
        row("1", f"`Router.complete()`, {label}: median / p99 and median ratio to bare, to return; "
            "until litellm's logging of the call is done (like for like, the target)",
            f"{fig('adaptroute', 0)}, x{r0:.3f}; {fig('adaptroute', 1)}, **x{r1:.3f}**"
            + (f" (x{ratio('adaptroute', 1, 'bare_min'):.3f} vs the minimal call)" if c == 0 else ""),
            "<= x1.10", r1 <= 1.10)
        if c == 0:
            row("1", "`litellm.Router.completion()` (4 deployments, same mock): same figures and ratios",
                f"{fig('litellm_router', 0)}, x{ratio('litellm_router', 0):.3f}; "
                f"{fig('litellm_router', 1)}, x{ratio('litellm_router', 1):.3f}")
    bench_async(prompts, quick)


def bench_async(prompts: list[tuple[list[dict[str, str]], str]], quick: bool) -> None:
    import litellm

    from adaptroute import Router

    calls, concurrency, rounds = (400, 200, 2) if quick else (1000, 200, 4)
    router = Router(models=ROUTER_MODELS, store=":memory:", seed=0)
    say(f"1: acomplete vs litellm.acompletion, {concurrency} concurrent, {calls} calls x {rounds} rounds each")

    async def one_round(kind: str) -> float:
        gate = asyncio.Semaphore(concurrency)

        async def call(i: int) -> None:
            messages, task = prompts[i % len(prompts)]
            async with gate:
                if kind == "bare":
                    await litellm.acompletion(model=ROUTER_MODELS[i % len(ROUTER_MODELS)], messages=messages,
                                              mock_response="ok", timeout=60.0, max_retries=0)
                else:
                    await router.acomplete(messages, task=task, mock_response="ok")

        t = time.perf_counter()
        await asyncio.gather(*(call(i) for i in range(calls)))
        return calls / (time.perf_counter() - t)

    async def run() -> dict[str, list[float]]:
        rates: dict[str, list[float]] = {"bare": [], "adaptroute": []}
        await one_round("bare")  # warm-up
        await one_round("adaptroute")
        for r in range(rounds):
            for kind in (("bare", "adaptroute") if r % 2 == 0 else ("adaptroute", "bare")):
                rates[kind].append(await one_round(kind))
        return rates

    rates = asyncio.run(run())
    router.close()
    b, o = median(rates["bare"]), median(rates["adaptroute"])
    row("1", f"`acomplete()` vs bare `litellm.acompletion`, {concurrency} concurrent (calls/s, median of {rounds} rounds)",
        f"{o:,.0f} vs {b:,.0f} calls/s (x{o / b:.3f})")


# -- 2, 3, 7: policy workloads ------------------------------------------------------------------------
@dataclass
class Workload:
    X: np.ndarray  # contexts (n, d)
    models: tuple[str, ...]
    quality: np.ndarray  # (n, K)
    cost: np.ndarray  # (n, K)
    order: np.ndarray  # rows, in the order they are routed


def workload(data: Any, X: np.ndarray, k: int, seed: int = 0) -> Workload:
    """RouterBench's first 10 models with their real outcomes; 50 models = the 11 real ones, each
    repeated with 10% of its correctness bits flipped and its prices scaled by a random factor."""
    rng = np.random.default_rng(seed)
    if k <= len(data.models):
        models = tuple(data.models[:k])
        quality, cost = data.quality[:, :k], data.cost_usd[:, :k]
    else:
        base = np.arange(k) % len(data.models)
        flip = rng.random((len(data), k)) < 0.1
        quality = np.abs(data.quality[:, base] - flip)
        cost = data.cost_usd[:, base] * rng.uniform(0.5, 2.0, k)
        models = tuple(f"{data.models[b]}#{j}" for j, b in enumerate(base))
    order = np.concatenate([rng.permutation(len(data)) for _ in range(3)])
    return Workload(X, models, quality, cost, order)


def learned_policy(name: str, w: Workload, steps: int, seed: int = 0) -> Any:
    from adaptroute.config import RewardWeights
    from adaptroute.policy import make_policy
    from adaptroute.types import Outcome

    policy = make_policy(name, weights=RewardWeights.parse(WEIGHTS), seed=seed)
    for m in w.models:
        policy.add_model(m)
    index = {m: i for i, m in enumerate(w.models)}
    for row_ in w.order[:steps]:
        x = w.X[row_]
        model, _ = policy.choose(x)
        k = index[model]
        policy.update(x, model, Outcome(float(w.quality[row_, k]), float(w.cost[row_, k]), 0.0))
    return policy


def bench_policies(data: Any, X: np.ndarray, quick: bool) -> None:
    learn = 1000 if quick else 3000
    n = 1000 if quick else 5000
    for k in (10, 50):
        w = workload(data, X, k)
        for name in ("thompson", "linucb", "egreedy"):
            say(f"2: {name}, {k} models: learning from {learn} bandit updates, then {n} timed decisions")
            policy = learned_policy(name, w, learn)
            rows = w.order[learn: learn + n]
            for r in rows[:200]:
                policy.choose(w.X[r])
            choose_t, probs_t = [], []
            clock = time.perf_counter
            for r in rows:
                x = w.X[r]
                t = clock()
                policy.choose(x)
                t1 = clock()
                policy.probabilities(x)
                probs_t.append(clock() - t1)
                choose_t.append(t1 - t)
            target = "median <= 50 µs" if k == 10 else ""
            met = median(choose_t) <= 50e-6 if k == 10 else None
            row("2", f"{name}, {k} models: `choose(x)` median / p99; `probabilities(x)` median / p99",
                f"{us(median(choose_t))} / {us(p99(choose_t))}; {us(median(probs_t))} / {us(p99(probs_t))}", target, met)


def bench_features(data: Any, quick: bool) -> None:
    from adaptroute.features import HashingFeaturizer

    featurizer = HashingFeaturizer()
    lengths = np.array([len(t) for t in data.texts])
    short = [i for i in np.flatnonzero(lengths < 200)]
    long = [i for i in np.flatnonzero((lengths >= 1800) & (lengths <= 2300))]
    n = 2000 if quick else 10000
    for label, pool in (("short prompt (< 200 chars)", short), ("~2 kB prompt (1.8-2.3k chars)", long)):
        say(f"2: featurization, {label}: {len(pool)} distinct RouterBench prompts")
        messages = [([{"role": "user", "content": data.texts[i]}], str(data.tasks[i])) for i in pool]
        for m, task in messages[:200]:
            featurizer.transform(m, task)
        times = []
        for j in range(n):
            m, task = messages[j % len(messages)]
            t = time.perf_counter()
            featurizer.transform(m, task)
            times.append(time.perf_counter() - t)
        row("2", f"featurization (HashingFeaturizer.transform), {label}: median / p99", f"{us(median(times))} / {us(p99(times))}")


def bench_update(data: Any, X: np.ndarray, quick: bool) -> None:
    from adaptroute.types import Outcome

    w = workload(data, X, 10)
    learn = 1000 if quick else 3000
    policy = learned_policy("thompson", w, learn)
    times = []
    say("3: policy.update (thompson, 10 models)")
    for j, r in enumerate(w.order[learn: learn + (2000 if quick else 5000)]):
        k = j % len(w.models)
        outcome = Outcome(float(w.quality[r, k]), float(w.cost[r, k]), 0.0)
        t = time.perf_counter()
        policy.update(w.X[r], w.models[k], outcome)
        times.append(time.perf_counter() - t)
    row("3", f"online `policy.update()` (thompson, 10 models, d={w.X.shape[1]}): median / p99", f"{us(median(times))} / {us(p99(times))}")


def bench_peers(data: Any, X: np.ndarray, quick: bool) -> None:
    """The same 10-model RouterBench workload, one decision + one update per context, in three libraries."""
    w = workload(data, X, 10)
    steps = 1000 if quick else 3150
    rows = w.order[:steps]
    reward = w.quality - 50.0 * w.cost  # WEIGHTS
    results: dict[str, tuple[float, float]] = {}

    def adaptroute_run() -> tuple[float, float]:
        from adaptroute.config import RewardWeights
        from adaptroute.policy import make_policy
        from adaptroute.types import Outcome

        policy = make_policy("thompson", weights=RewardWeights.parse(WEIGHTS), seed=0)
        for m in w.models:
            policy.add_model(m)
        index = {m: i for i, m in enumerate(w.models)}
        got = 0.0
        t = time.perf_counter()
        for r in rows:
            x = w.X[r]
            model, _ = policy.choose(x)
            k = index[model]
            policy.update(x, model, Outcome(float(w.quality[r, k]), float(w.cost[r, k]), 0.0))
            got += reward[r, k]
        return steps / (time.perf_counter() - t), got / steps

    def mabwiser_run() -> tuple[float, float]:
        from mabwiser.mab import MAB, LearningPolicy

        arms = list(range(len(w.models)))
        mab = MAB(arms=arms, learning_policy=LearningPolicy.LinUCB(alpha=1.0), seed=0)
        first = w.order[-len(arms):]  # one warm-up row per arm (mabwiser needs fit() before predict())
        mab.fit(decisions=arms, rewards=[float(reward[r, a]) for r, a in zip(first, arms)], contexts=w.X[first])
        got = 0.0
        t = time.perf_counter()
        for r in rows:
            x = w.X[r][None, :]
            k = int(mab.predict(x))
            mab.partial_fit(decisions=[k], rewards=[float(reward[r, k])], contexts=x)
            got += reward[r, k]
        return steps / (time.perf_counter() - t), got / steps

    def vw_run() -> tuple[float, float]:
        import vowpalwabbit

        vw = vowpalwabbit.Workspace("--cb_explore_adf --squarecb --quiet --random_seed 0")
        actions = [f"|a m{k}" for k in range(len(w.models))]
        rng = np.random.default_rng(0)
        got = 0.0
        t = time.perf_counter()
        for r in rows:
            x = w.X[r]
            nz = np.flatnonzero(x)
            shared = "shared |s " + " ".join(f"{j}:{x[j]:.6g}" for j in nz)
            pmf = np.asarray(vw.predict([shared, *actions]), dtype=float)
            k = int(rng.choice(len(pmf), p=pmf / pmf.sum()))
            lines = [shared, *actions]
            lines[k + 1] = f"0:{-reward[r, k]:.6g}:{pmf[k]:.6g} {actions[k]}"
            vw.learn(lines)
            got += reward[r, k]
        vw.finish()
        return steps / (time.perf_counter() - t), got / steps

    for name, fn in (("adaptroute thompson (default)", adaptroute_run), ("mabwiser LinUCB", mabwiser_run),
                     ("Vowpal Wabbit cb_explore_adf --squarecb", vw_run)):
        say(f"7: {name}: {steps} decisions + updates, 10 models")
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - reported in the table, never faked
            fail_row("7", f"{name}: decisions/s", exc)
    ours = results.get("adaptroute thompson (default)")
    for name, (rate, mean_reward) in results.items():
        ratio = f"; adaptroute / this: x{ours[0] / rate:.2f}" if ours and not name.startswith("adaptroute") else ""
        row("7", f"{name}: decisions/s with updates (mean reward, quality - 50*USD)",
            f"{rate:,.0f}/s (reward {mean_reward:.3f}){ratio}")


# -- 4: logging; builds the 1M-row log used by 3 and 6 -----------------------------------------------
class RecordFactory:
    """Realistic decision + outcome records: RouterBench feature vectors, 5 models, real-looking
    probabilities, a failed primary with a fallback on 3% of requests."""

    def __init__(self, X: np.ndarray, tasks: np.ndarray, seed: int = 0) -> None:
        self.X = X.astype(np.float32)
        self.tasks = [str(t) for t in tasks]
        self.rng = np.random.default_rng(seed)

    def make(self, n: int, t0: float) -> list[tuple[Any, Any]]:
        from adaptroute.types import Attempt, Decision, ModelScore, RoutingRecord

        rng, k = self.rng, len(LOG_MODELS)
        rows = rng.integers(len(self.X), size=n)
        logits = rng.normal(size=(n, k)) * 1.5
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        probs = 0.005 / k + (1 - 0.005) * probs
        cum = probs.cumsum(axis=1)
        chosen = np.minimum((cum < rng.random((n, 1)) * cum[:, -1:]).sum(axis=1), k - 1)
        qualities = rng.random(n) < (0.55 + 0.08 * chosen)
        failed = rng.random(n) < 0.03
        tokens_in = rng.integers(50, 2000, size=n)
        tokens_out = rng.integers(5, 400, size=n)
        latency = rng.gamma(2.0, 0.4, size=n)
        out = []
        for i in range(n):
            c = int(chosen[i])
            model = LOG_MODELS[c]
            p = tuple(float(v) for v in probs[i])
            decision = Decision(
                id=uuid.uuid4().hex, ts=t0 + i * 1e-3, task=self.tasks[rows[i]], features=self.X[rows[i]],
                eligible=LOG_MODELS, probabilities=p, chosen=model, propensity=p[c], policy_name="thompson",
                policy_version=0, prompt_hash=uuid.uuid4().hex * 2,
            )
            cost = float(tokens_in[i] * 1.5e-7 * (c + 1) + tokens_out[i] * 6e-7 * (c + 1))
            ok = Attempt(model, "primary", float(latency[i]), cost, int(tokens_in[i]), int(tokens_out[i]), float(qualities[i]))
            if failed[i]:
                backup = LOG_MODELS[(c + 1) % k]
                attempts = (Attempt(model, "primary", 0.05, 0.0, error_class="RateLimitError",
                                    error_message="rate limited"),
                            Attempt(backup, "fallback", float(latency[i]), cost, int(tokens_in[i]), int(tokens_out[i]),
                                    float(qualities[i])))
            else:
                attempts = (ok,)
            last = attempts[-1]
            scores = tuple(ModelScore(m, 0.7, 1e-4, 0.8, 0.01, 0.69, 0.1, q) for m, q in zip(LOG_MODELS, p))
            record = RoutingRecord(
                decision_id=decision.id, task=decision.task, model=last.model, chosen=model, probability=p[c],
                scores=scores, attempts=attempts, quality=last.quality, cost_usd=sum(a.cost_usd for a in attempts),
                latency_s=sum(a.latency_s for a in attempts), escalated=False, policy_version=0,
                returned_seq=len(attempts) - 1,
            )
            out.append((decision, record))
        return out


def bench_logging(data: Any, X: np.ndarray, quick: bool, tmp: Path) -> Path:
    from adaptroute.store import LogStore

    total = 100_000 if quick else 1_000_000
    chunk = 100_000 if not quick else 50_000
    factory = RecordFactory(X, data.tasks)
    path = tmp / "log_1m.duckdb"
    store = LogStore(path)
    say(f"4: buffered logging: {total:,} decisions + outcomes through LogStore.add_decision/add_result "
        f"(the {total:,}-row log for 3 and 6), records built untimed in chunks of {chunk:,}")
    timed = 0.0
    t0 = time.time() - total * 1e-3
    for start in range(0, total, chunk):
        records = factory.make(chunk, t0 + start * 1e-3)
        gc.collect()
        t = time.perf_counter()
        for decision, record in records:
            store.add_decision(decision)
            store.add_result(record)
        store.flush()  # inside the timed region: every row is written to DuckDB before the clock stops
        timed += time.perf_counter() - t
        say(f"  logged {start + chunk:,}/{total:,} ({(start + chunk) / timed:,.0f} outcomes/s so far)")
        del records
    t = time.perf_counter()
    store.close()
    timed += time.perf_counter() - t
    rate = total / timed
    row("4", f"buffered logging, file store ({total:,} decisions + attempts + outcomes, incl. every flush): outcomes/s",
        f"{rate:,.0f}/s", ">= 100,000/s", rate >= 100_000)

    n_memory = 50_000 if quick else 200_000
    say(f"4: buffered logging, in-memory store: {n_memory:,} decisions + outcomes")
    records = factory.make(n_memory, time.time())
    gc.collect()
    memory = LogStore(":memory:")
    t = time.perf_counter()
    for decision, record in records:
        memory.add_decision(decision)
        memory.add_result(record)
    memory.flush()
    rate_m = n_memory / (time.perf_counter() - t)
    memory.close()
    del records
    row("4", f"buffered logging, in-memory store ({n_memory:,} decisions + attempts + outcomes, incl. flushes): outcomes/s",
        f"{rate_m:,.0f}/s", ">= 100,000/s", rate_m >= 100_000)

    n_durable = 200 if quick else 500
    say(f"4: durable logging: {n_durable} outcomes, one request at a time (a commit per request)")
    records = factory.make(n_durable, time.time())
    durable = LogStore(tmp / "durable.duckdb", durable=True)
    per = []
    t = time.perf_counter()
    for decision, record in records:
        t1 = time.perf_counter()
        durable.add_decision(decision)
        durable.add_result(record)
        per.append(time.perf_counter() - t1)
    rate_d = n_durable / (time.perf_counter() - t)
    durable.close()
    row("4", "durable logging (`durable=True`, one request at a time: its decision is committed with its outcome): "
        "outcomes/s; per outcome median",
        f"{rate_d:,.0f}/s; {us(median(per))}")
    return path


def run_child(kind: str, path: Path) -> dict[str, Any]:
    """Retrain / OPE in a fresh interpreter, so its peak RSS is its own."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind, str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(kind: str, path: str) -> None:
    import warnings

    from adaptroute.policy import make_policy
    from adaptroute.store import read_log

    t = time.perf_counter()
    batch = read_log(path)
    read_s = time.perf_counter() - t
    out: dict[str, Any] = {"n": len(batch), "read_s": read_s}
    if kind == "retrain":
        t = time.perf_counter()
        make_policy("thompson").fit(batch)
        out["fit_s"] = time.perf_counter() - t
    else:
        from adaptroute.replay.ope import evaluate

        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = evaluate(batch, make_policy("thompson"), estimator="dr")
        out["ope_s"] = time.perf_counter() - t
        out["value"] = result.reward.value
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(out))


def bench_retrain(path: Path) -> None:
    say("3: retrain from the log: read_log(path) + policy.fit(batch) in a fresh interpreter")
    try:
        r = run_child("retrain", path)
    except Exception as exc:  # noqa: BLE001
        fail_row("3", "retrain from the log", exc)
        return
    total = r["read_s"] + r["fit_s"]
    row("3", f"retrain from a {r['n']:,}-decision log: `read_log` + `fit` (seconds)",
        f"{total:.2f} s ({r['read_s']:.2f} read + {r['fit_s']:.2f} fit)", "<= 15 s", total <= 15)
    row("3", "retrain peak memory (max RSS of the fresh process, `resource.getrusage`, incl. interpreter and imports)",
        f"{r['maxrss_mb']:,.0f} MB", "<= 2 GB", r["maxrss_mb"] <= 2048)


def bench_ope(path: Path) -> None:
    say("6: off-policy evaluation (DR, defaults) of the log in a fresh interpreter")
    try:
        r = run_child("ope", path)
    except Exception as exc:  # noqa: BLE001
        fail_row("6", "OPE end to end", exc)
        return
    total = r["read_s"] + r["ope_s"]
    row("6", f"`replay.ope.evaluate` (dr, 5 folds, 200 bootstrap) of {r['n']:,} decisions incl. `read_log` (seconds)",
        f"{total:.2f} s ({r['read_s']:.2f} read + {r['ope_s']:.2f} evaluate; peak RSS {r['maxrss_mb']:,.0f} MB)",
        "< 20 s", total < 20)


# -- 5: simulate --------------------------------------------------------------------------------------
def bench_simulate(data_path: Path, quick: bool) -> None:
    from adaptroute.replay.simulate import simulate

    say("5: simulate on RouterBench")
    t = time.perf_counter()
    data = load_routerbench(data_path)
    load_s = time.perf_counter() - t
    times = []
    for _ in range(1 if quick else 3):
        t = time.perf_counter()
        simulate(data, "thompson", seed=0)
        times.append(time.perf_counter() - t)
    rate = len(data) / median(times)
    row("5", f"`simulate()` (thompson, {len(data):,} prompts x {len(data.models)} models, incl. featurization): decisions/s",
        f"{rate:,.0f}/s ({median(times):.3f} s; load {load_s:.2f} s)", ">= 20,000/s", rate >= 20_000)
    exe = Path(sys.executable).parent / "adaptroute"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "adaptroute.cli"]
    rel = os.path.relpath(data_path, REPO)
    walls = []
    for _ in range(1 if quick else 3):
        t = time.perf_counter()
        subprocess.run(command + ["simulate", rel, "--json"], cwd=REPO, check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    row("5", f"`adaptroute simulate {rel} --json` as a subprocess, incl. start-up (wall, median)",
        f"{median(walls):.2f} s", "< 3 s", median(walls) < 3)


# -- report -------------------------------------------------------------------------------------------
def versions() -> str:
    import duckdb
    import litellm  # noqa: F401 - version only

    from importlib.metadata import version

    return (f"Python {platform.python_version()}, numpy {np.__version__}, duckdb {duckdb.__version__}, "
            f"litellm {version('litellm')}, {os.cpu_count()} CPUs ({platform.machine()})")


def render(started: str, seconds: float, load: tuple[float, float, float]) -> str:
    lines = [
        "# adaptroute performance",
        "",
        f"Measured by `make bench` (`benchmarks/bench.py`) on {started}: {versions()}; load average at start "
        f"{load[0]:.2f}, whole run {seconds / 60:.1f} min. Times are `time.perf_counter` wall clock; ratios come "
        "from figures measured in this run. What each row measures: benchmarks/README.md.",
        "",
        "| # | Measurement | Result | Target | Met |",
        "|---|---|---|---|---|",
    ]
    for r in ROWS:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.item} | {r.what} | {r.result} | {r.target} | {met} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test, not figures")
    parser.add_argument("--only", default="0,1,2,3,4,5,6,7", help="comma-separated items to run")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="RouterBench folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--profile", action="store_true",
                        help="also profile the run with pyinstrument (peers extra) and print it on stderr")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    only = set(args.only.split(","))
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    tmp = Path(tempfile.mkdtemp(prefix="adaptroute-bench-"))
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    try:
        data = load_routerbench(args.data)
        X = contexts(data)
        if "0" in only:
            bench_import(args.quick)
        if "1" in only:
            bench_router(data, args.quick, tmp)
        if "2" in only:
            bench_policies(data, X, args.quick)
            bench_features(data, args.quick)
        if "3" in only:
            bench_update(data, X, args.quick)
        if only & {"3", "4", "6"}:
            log_path = bench_logging(data, X, args.quick, tmp)
            if "3" in only:
                bench_retrain(log_path)
            if "6" in only:
                bench_ope(log_path)
        if "5" in only:
            bench_simulate(args.data, args.quick)
        if "7" in only:
            bench_peers(data, X, args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False), file=sys.stderr)
    ROWS.sort(key=lambda r: r.item)  # stable: rows of one item keep their order
    table = render(started, time.perf_counter() - _START, load)
    print(table)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
