"""The gateway's throughput and added latency, next to LiteLLM's own proxy, in one run.

    .venv/bin/python benchmarks/gateway.py [--seconds 10] [--peer-python .venv-peer/bin/python]

Both gateways route to the same fake OpenAI-compatible provider (``python -m adaptroute.testing``, a
process of its own, answering at once) with two deployments each, one worker each, client keys on.
adaptroute logs every decision and outcome to a DuckDB file, as it would in production. For each
number of concurrent clients (1, 50, 200), a closed-loop load generator (benchmarks/loadgen.py, its
own process's asyncio loop) measures the provider called directly, adaptroute and LiteLLM in rounds
whose order rotates (this shared machine's speed drifts from minute to minute: each target gets the
same share of good and bad minutes), and pools each target's rounds. Added latency is the gateway's
percentile minus the direct call's at the same concurrency.

LiteLLM's proxy is installed only in a separate virtualenv (``pip install -r
../shared/peers/litellm-proxy.txt`` in .venv-peer), never in the project's; without it, its rows say
so. The table goes to stdout and to experiments/results/gateway.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import LoadResult, run_load  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "gateway.md"
CONCURRENCY = (1, 50, 200)
MESSAGES = [{"role": "user", "content": "Classify this support ticket: the invoice total is wrong."}]
KEY = "bench-" + secrets.token_hex(16)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 180, headers: dict[str, str] | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
                if r.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _adaptroute_config(directory: Path, provider: str) -> Path:
    models = "".join(
        f'[[models]]\nname = "{name}"\nlitellm_model = "openai/{name}"\napi_base = "{provider}"\n'
        f'api_key = "env:BENCH_PROVIDER_KEY"\ninput_cost_per_token = 1e-7\noutput_cost_per_token = 2e-7\n\n'
        for name in ("fast", "strong")
    )
    path = directory / "adaptroute.toml"
    path.write_text(f'[router]\nstore = "{directory / "routes.duckdb"}"\nreward = {{ quality = 1.0, cost = 20.0 }}\n'
                    f'timeout_s = 30.0\n\n{models}[server]\nclient_keys = ["env:BENCH_CLIENT_KEY"]\n')
    return path


def _litellm_config(directory: Path, provider: str) -> Path:
    deployments = "".join(
        f"  - model_name: bench\n    litellm_params:\n      model: openai/{name}\n      api_base: {provider}\n"
        f"      api_key: os.environ/BENCH_PROVIDER_KEY\n      input_cost_per_token: 1.0e-7\n"
        f"      output_cost_per_token: 2.0e-7\n"
        for name in ("fast", "strong")
    )
    path = directory / "litellm.yaml"
    path.write_text(f"model_list:\n{deployments}litellm_settings:\n  telemetry: false\n  drop_params: true\n"
                    f"general_settings:\n  master_key: {KEY}\n")
    return path


def _row(name: str, c: int, r: LoadResult, direct: LoadResult | None) -> str:
    p50, p99 = r.percentile(50) * 1000, r.percentile(99) * 1000
    if direct is None:
        added = "-", "-"
    else:
        added = f"{p50 - direct.percentile(50) * 1000:.2f}", f"{p99 - direct.percentile(99) * 1000:.2f}"
    other = sum(v for k, v in r.statuses.items() if k != 200) + r.errors
    return f"| {name} | {c} | {r.rps:.0f} | {p50:.2f} | {p99:.2f} | {added[0]} | {added[1]} | {r.ok} | {other} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per round (after 2 s of warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target and concurrency, in rotating order")
    parser.add_argument("--peer-python", default=str(ROOT / ".venv-peer" / "bin" / "python"),
                        help="the python of the virtualenv that has LiteLLM's proxy")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "BENCH_PROVIDER_KEY": "sk-bench-provider",
           "BENCH_CLIENT_KEY": KEY}
    peer = Path(args.peer_python)
    litellm_bin = peer.parent / "litellm"
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    ports = {"fake": _free_port(), "adaptroute": _free_port(), "litellm": _free_port()}
    provider = f"http://127.0.0.1:{ports['fake']}/v1"
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[tuple[str, int], LoadResult] = {}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        fake = subprocess.Popen([sys.executable, "-m", "adaptroute.testing", "--port", str(ports["fake"])], env=env, **quiet)
        procs.append(fake)
        _wait(f"{provider}/models", fake)
        gateway = subprocess.Popen([sys.executable, "-m", "adaptroute.cli", "serve", "--config",
                                    str(_adaptroute_config(work, provider)), "--port", str(ports["adaptroute"])], env=env, **quiet)
        procs.append(gateway)
        targets: dict[str, tuple[int, dict]] = {
            "direct": (ports["fake"], {"model": "fast", "messages": MESSAGES}),
            "adaptroute serve": (ports["adaptroute"], {"model": "adaptroute/bench", "messages": MESSAGES}),
        }
        if litellm_bin.exists():
            proxy = subprocess.Popen([str(litellm_bin), "--config", str(_litellm_config(work, provider)), "--host", "127.0.0.1",
                                      "--port", str(ports["litellm"]), "--num_workers", "1"], env=env, cwd=work, **quiet)
            procs.append(proxy)
            targets["LiteLLM proxy"] = (ports["litellm"], {"model": "bench", "messages": MESSAGES})
        else:
            print(f"LiteLLM's proxy not found at {litellm_bin}: its rows are left out", file=sys.stderr)
        _wait(f"http://127.0.0.1:{ports['adaptroute']}/healthz", gateway)
        if "LiteLLM proxy" in targets:
            _wait(f"http://127.0.0.1:{ports['litellm']}/health/liveliness", proxy)
        names = list(targets)
        steps = [(names[(i + r) % len(names)], c) for c in CONCURRENCY for r in range(args.rounds) for i in range(len(names))]
        for name, c in tqdm(steps, desc="gateway bench", file=sys.stderr):
            port, payload = targets[name]
            key = None if name == "direct" else KEY
            result = run_load("127.0.0.1", port, "/v1/chat/completions", payload, clients=c,
                              seconds=args.seconds, warmup_s=2.0, key=key)
            results[(name, c)] = results[(name, c)].merge(result) if (name, c) in results else result
    finally:
        for proc in reversed(procs):
            _stop(proc)
    lines = [
        f"# Gateway benchmark\n",
        f"`.venv/bin/python benchmarks/gateway.py --seconds {args.seconds:g} --rounds {args.rounds}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python {platform.python_version()}. "
        "One worker per gateway, two deployments behind each, client keys on; the provider is the fake "
        "one (answers at once) in its own process; the load generator is one asyncio process. Every "
        f"figure is from this one run ({args.rounds} rounds of {args.seconds:g} s per row, each after 2 s of "
        "warm-up, in rotating order). Latencies in ms; "
        "added = the gateway's percentile minus the direct call's at the same concurrency.\n",
        "| target | clients | requests/s | p50 | p99 | added p50 | added p99 | ok | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in CONCURRENCY:
        direct = results.get(("direct", c))
        for name in targets:
            if (name, c) in results:
                lines.append(_row(name, c, results[(name, c)], None if name == "direct" else direct))
    ratio_lines = []
    for c in CONCURRENCY:
        ours, theirs = results.get(("adaptroute serve", c)), results.get(("LiteLLM proxy", c))
        if ours and theirs and theirs.rps:
            ratio_lines.append(f"- {c} clients: adaptroute serves {ours.rps / theirs.rps:.2f}x LiteLLM's requests/s; "
                               f"p50 {ours.percentile(50) * 1000:.1f} ms vs {theirs.percentile(50) * 1000:.1f} ms")
    text = "\n".join(lines) + ("\n\n" + "\n".join(ratio_lines) if ratio_lines else "") + "\n"
    print(text)
    if not args.no_write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text)
        print(f"written to {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
