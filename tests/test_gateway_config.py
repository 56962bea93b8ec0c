"""The gateway's config file: the documented shape works as written; each mistake gets one error that
names the file, the key and what was expected; secrets come from the environment and are never shown."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from adaptroute import ConfigError
from adaptroute.cli import main
from adaptroute.server import load_config
from adaptroute.server.auth import KeyChecker

ISSUE_SHAPE = """
[router]
store = "routes.duckdb"          # the log, as Router(store=...)
reward = { quality = 1.0, cost = 20.0, latency = 0.0 }

[[models]]                       # one table per model: the fields of ModelSpec
name = "fast"
litellm_model = "openai/fast"
api_base = "http://127.0.0.1:9999/v1"
api_key = "env:FAST_KEY"         # "env:NAME": read from the environment at start
input_cost_per_token = 1e-7
output_cost_per_token = 2e-7

[server]
client_keys = ["env:GATEWAY_KEY"]  # Bearer keys clients must send; none: no auth (loopback only)
"""
ENV = {"FAST_KEY": "sk-fast-provider-key-123456", "GATEWAY_KEY": "client-key-abcdef"}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gateway.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "adaptroute.toml"
    path.write_text(text)
    return path


def test_the_documented_shape_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_SHAPE), environ=ENV)
    assert [m.name for m in config.models] == ["fast"]
    assert config.models[0].call_params["api_key"] == ENV["FAST_KEY"]
    assert config.reward is not None and config.reward.cost == 20.0
    assert config.store == "routes.duckdb" and config.policy == "thompson"
    assert config.server.client_key_hashes == (hashlib.sha256(ENV["GATEWAY_KEY"].encode()).digest(),)
    assert ENV["GATEWAY_KEY"] not in repr(config) and ENV["FAST_KEY"] not in repr(config)


def test_router_settings_policy_seed_and_scorer(tmp_path: Path) -> None:
    text = ISSUE_SHAPE.replace("[[models]]", 'policy = "linucb"\nseed = 7\ntimeout_s = 9.5\nmax_fallbacks = 0\n'
                               'escalate_below = 0.5\nscorer = { regex = "\\\\d{4}" }\n\n[[models]]')
    config = load_config(write(tmp_path, text), environ=ENV)
    kwargs = config.router_kwargs()
    assert kwargs["policy"] == "linucb" and kwargs["seed"] == 7 and kwargs["timeout_s"] == 9.5
    assert kwargs["max_fallbacks"] == 0 and kwargs["escalate_below"] == 0.5
    assert kwargs["scorer"]([], {"choices": [{"message": {"content": "in 2024"}}]}) == 1.0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[router]", "[router]\ntimeout = 5"), r"router\.timeout: unknown key \(did you mean 'timeout_s'\?\)"),
        (("[router]", "[router]\ntimeout_s = -1"), r"\[router\]: timeout_s"),
        (('reward = { quality = 1.0, cost = 20.0, latency = 0.0 }', 'reward = { quality = 1.0, costs = 2 }'), r"router\.reward: .*costs"),
        (('reward = { quality = 1.0, cost = 20.0, latency = 0.0 }', 'policy = "bandit"'), r"router\.policy: expected one of"),
        (('api_key = "env:FAST_KEY"', 'api_key = "sk-literal-secret-value"'), r"models\[0\] \(fast\)\.api_key: expected \"env:NAME\""),
        (('api_key = "env:FAST_KEY"', 'api_key = "env:MISSING_KEY"'), r"models\[0\] \(fast\)\.api_key: the environment variable MISSING_KEY is not set"),
        (("input_cost_per_token = 1e-7", 'input_cost_per_token = "cheap"'), r"models\[0\] \(fast\): input_cost_per_token"),
        (('name = "fast"', ""), r"models\[0\]: name"),
        (('client_keys = ["env:GATEWAY_KEY"]', 'client_keys = ["plain-text-key"]'), r"server\.client_keys\[0\]: expected \"env:NAME\" or \"sha256:"),
        (('client_keys = ["env:GATEWAY_KEY"]', 'client_keys = ["sha256:abc"]'), r"server\.client_keys\[0\]: expected \"sha256:\" and 64 hex"),
        (('client_keys = ["env:GATEWAY_KEY"]', "port = 99999"), r"server\.port: expected 0-65535"),
        (('client_keys = ["env:GATEWAY_KEY"]', 'prot = 4000'), r"server\.prot: unknown key \(did you mean 'port'\?\)"),
        (('client_keys = ["env:GATEWAY_KEY"]', 'open_paths = ["/v1/chat/completions"]'), r"server\.open_paths"),
        (("[server]", "[servers]"), r"servers: unknown key \(did you mean 'server'\?\)"),
        (("[[models]]", "[[model]]"), r"model: unknown key"),
        (('store = "routes.duckdb"', "store = 3"), r"router\.store: expected a path"),
        (("[server]", '[[models]]\nname = "fast"\nlitellm_model = "openai/other"\n\n[server]'),
         r"models\[1\] \(fast\)\.name: 'fast' is the name of an earlier model"),
    ],
)
def test_each_mistake_names_file_key_and_expectation(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = write(tmp_path, ISSUE_SHAPE.replace(*change, 1))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path, environ=ENV)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert ENV["FAST_KEY"] not in message and "sk-literal-secret-value" not in message


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"adaptroute\.toml: invalid TOML: .*line 2"):
        load_config(write(tmp_path, "[router]\nstore = \n"), environ=ENV)
    with pytest.raises(ConfigError, match=r"nowhere\.toml: cannot read the config file"):
        load_config(tmp_path / "nowhere.toml", environ=ENV)
    with pytest.raises(ConfigError, match=r"models: expected one \[\[models\]\] table per model"):
        load_config(write(tmp_path, "[router]\n"), environ=ENV)


def test_client_keys_as_hashes_and_constant_time_check() -> None:
    digest = hashlib.sha256(b"k-1").digest()
    checker = KeyChecker((digest, hashlib.sha256(b"k-2").digest()))
    assert checker.allows("Bearer k-1") and checker.allows("bearer k-2")
    for header in (None, "", "Bearer", "Bearer ", "Basic k-1", "Bearer k-3", "k-1", "Bearer " + "x" * 10_000):
        assert not checker.allows(header)
    assert KeyChecker(()).allows(None)  # no keys configured: open (loopback only, see check_exposure)


def test_serve_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, ISSUE_SHAPE)
    assert main(["serve", "--check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK: 1 model(s) (fast)" in out and "1 client key(s)" in out and ENV["GATEWAY_KEY"] not in out
    assert main(["serve", "--config", str(path), "--check"]) == 0
    capsys.readouterr()
    monkeypatch.delenv("FAST_KEY")
    assert main(["serve", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the environment variable FAST_KEY is not set" in err and str(path) in err
    # a model whose price is unknown is found by --check too, before anything would serve
    monkeypatch.setenv("FAST_KEY", ENV["FAST_KEY"])
    unpriced = write(tmp_path, ISSUE_SHAPE.replace("input_cost_per_token = 1e-7\noutput_cost_per_token = 2e-7", ""))
    assert main(["serve", "--check", str(unpriced)]) == 2
    assert "price" in capsys.readouterr().err.lower()


def test_open_gateway_only_on_loopback(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAST_KEY", ENV["FAST_KEY"])
    path = write(tmp_path, ISSUE_SHAPE.replace('client_keys = ["env:GATEWAY_KEY"]', 'host = "0.0.0.0"'))
    assert main(["serve", "--check", str(path)]) == 2
    assert "none are set, so the gateway would answer anyone on 0.0.0.0" in capsys.readouterr().err


def test_more_than_one_worker_on_duckdb_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, ISSUE_SHAPE)
    assert main(["serve", "--config", str(path), "--workers", "2", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "2 workers cannot share the DuckDB log" in err and "postgresql://" in err
    assert not (tmp_path / "routes.duckdb").exists()  # refused before anything opened


def test_the_example_config_checks(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAST_KEY", "unused-by-the-fake-provider")
    monkeypatch.setenv("GATEWAY_KEY", "my-gateway-key")
    assert main(["serve", "--check", str(EXAMPLE)]) == 0
    assert "OK: 2 model(s) (fast, strong)" in capsys.readouterr().out


def test_a_database_url_from_the_environment_is_never_printed_with_its_password(tmp_path: Path) -> None:
    env = {**ENV, "DATABASE_URL": "postgresql://router:s3cret-pw@db.internal:5432/routes"}
    config = load_config(write(tmp_path, ISSUE_SHAPE.replace('store = "routes.duckdb"', 'store = "env:DATABASE_URL"')), environ=env)
    assert config.store == env["DATABASE_URL"] and config.store_is_shared
    assert config.store_display == "postgresql://router:***@db.internal:5432/routes"
    assert "s3cret-pw" not in repr(config)
