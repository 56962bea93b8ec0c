"""Credentials of any shape never reach the log, a Parquet snapshot, an error or a repr: every value the
router sends as a credential is registered (api_key, headers, URL userinfo, SecretStr, secret_params,
provider keys in the environment) and removed wherever it would be stored or raised, over real HTTP."""

from __future__ import annotations

import base64
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import secrets as random_secrets
import string
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from adaptroute import AllModelsFailedError, ModelSpec, Router
from adaptroute.secrecy import mask_params, scrub, secret_values
from adaptroute.testing import Behavior, FakeOpenAI, fake_openai


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as s:
        yield s


def odd_key(alphabet: str, n: int = 40, prefix: str = "") -> str:
    """A key of a shape no pattern knows (other providers' keys do not start with sk-)."""
    return prefix + "".join(random_secrets.choice(alphabet) for _ in range(n))


SHAPES = {
    "hex": lambda: uuid.uuid4().hex + uuid.uuid4().hex[:8],
    "base64ish": lambda: odd_key(string.ascii_letters + string.digits + "+/", 43) + "=",
    "dotted": lambda: odd_key(string.ascii_lowercase, 12) + "." + odd_key(string.digits, 10) + "." + odd_key(string.ascii_uppercase, 9),
    "short": lambda: odd_key(string.ascii_letters + string.digits, 12),
    "punctuated": lambda: odd_key(string.ascii_letters + string.digits + "-_~!$", 32, prefix="live_"),
}


def everything_stored(router: Router, tmp_path: Path) -> str:
    """Every text the log holds: the DuckDB file bytes and a Parquet snapshot's bytes, as text."""
    snap = router.store.export_parquet(tmp_path / f"snap-{uuid.uuid4().hex[:6]}")
    blobs = [p.read_bytes() for p in snap.glob("*.parquet")]
    rows = router.store.query("SELECT coalesce(error_message, '') FROM attempts")
    return "\n".join([b.decode("latin-1") for b in blobs] + [r[0] for r in rows])


def fragments(secret: str) -> list[str]:
    """The whole secret and runs of it a provider might echo (its middle, its end)."""
    return [secret, secret[2:14], secret[-10:], secret.lower(), base64.b64encode(secret.encode()).decode()[:16]]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_api_key_of_any_shape_is_removed_from_log_parquet_and_errors(server: FakeOpenAI, tmp_path: Path,
                                                                     shape: str, capfd: pytest.CaptureFixture[str]) -> None:
    key = SHAPES[shape]()
    model = f"echo-{shape}"
    # Providers echo part of the key ("Incorrect API key provided: AbCdEfGh1234****"), and in full
    server.set(model, Behavior.error(401, "Incorrect API key provided: {api_key_head}****; key={api_key}"))
    router = Router([server.spec(model, api_key=key)], store=str(tmp_path / "log.duckdb"), timeout_s=5)
    with pytest.raises(AllModelsFailedError) as info:
        router.complete([{"role": "user", "content": "hi"}])
    assert any(f"Bearer {key}" == r.headers.get("authorization") for r in server.requests(model))  # sent
    raised = str(info.value) + repr(info.value.attempts) + "".join(a.error_message or "" for a in info.value.attempts)
    stored = everything_stored(router, tmp_path)
    assert "***" in (info.value.attempts[0].error_message or "")
    printed = capfd.readouterr()
    for piece in fragments(key) + [key[:12]]:
        assert piece not in raised, piece
        assert piece not in stored, piece
        assert piece not in printed.out + printed.err
    router.close()


def test_header_tokens_model_and_per_call_are_removed(server: FakeOpenAI, tmp_path: Path) -> None:
    spec_token, call_token, custom = (odd_key(string.ascii_letters + string.digits, 30) for _ in range(3))
    server.set("echo-headers", Behavior.echo_headers())
    spec = server.spec("echo-headers", extra_headers={"Authorization": f"Bearer {spec_token}", "X-Tenant-Auth": custom})
    router = Router([spec], store=str(tmp_path / "h.duckdb"), timeout_s=5)
    texts = []
    for kwargs in ({}, {"extra_headers": {"X-Session": call_token}}):
        with pytest.raises(AllModelsFailedError) as info:
            router.complete([{"role": "user", "content": "hi"}], **kwargs)
        texts.append(repr(info.value.attempts))
    seen = " ".join(f"{k}: {v}" for r in server.requests("echo-headers") for k, v in r.headers.items())
    assert spec_token in seen and custom in seen and call_token in seen  # the provider did see them
    assert "Request headers were" in texts[0]  # the echo itself was kept, its secrets removed
    stored = everything_stored(router, tmp_path) + "".join(texts)
    for secret in (spec_token, call_token, custom):
        for piece in fragments(secret):
            assert piece not in stored, piece
    router.close()


def test_url_credentials_are_removed(server: FakeOpenAI, tmp_path: Path) -> None:
    user, password = "svc" + odd_key(string.ascii_lowercase, 8), odd_key(string.ascii_letters + string.digits, 24)
    server.set("echo-url", Behavior.echo_headers())
    base = server.base_url.replace("http://", f"http://{user}:{password}@")
    spec = ModelSpec(name="echo-url", litellm_model="openai/echo-url", api_base=base, api_key="none-needed",
                     input_cost_per_token=1e-6, output_cost_per_token=1e-6)
    assert password not in repr(spec) and user not in repr(spec)
    router = Router([spec], store=str(tmp_path / "u.duckdb"), timeout_s=5)
    with pytest.raises(AllModelsFailedError) as info:
        router.complete([{"role": "user", "content": "hi"}])
    stored = everything_stored(router, tmp_path) + repr(info.value.attempts)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    for piece in (password, password[3:15], basic, basic[4:20]):
        assert piece not in stored
    router.close()


def test_provider_key_read_from_the_environment_is_removed(server: FakeOpenAI, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key = odd_key(string.ascii_letters + string.digits, 36)
    monkeypatch.setenv("OPENAI_API_KEY", key)  # litellm reads it: the router never sees it passed
    server.set("echo-env", Behavior.echo_key())
    spec = ModelSpec(name="echo-env", litellm_model="openai/echo-env", api_base=server.base_url,
                     input_cost_per_token=1e-6, output_cost_per_token=1e-6)
    router = Router([spec], store=str(tmp_path / "e.duckdb"), timeout_s=5)
    with pytest.raises(AllModelsFailedError) as info:
        router.complete([{"role": "user", "content": "hi"}])
    assert server.requests("echo-env")[-1].headers.get("authorization") == f"Bearer {key}"
    stored = everything_stored(router, tmp_path) + repr(info.value.attempts)
    for piece in fragments(key):
        assert piece not in stored
    router.close()


def test_marked_secrets_are_sent_in_clear_and_masked_everywhere_else(server: FakeOpenAI, tmp_path: Path) -> None:
    key, extra, secret = (odd_key(string.ascii_letters + string.digits, 28) for _ in range(3))
    server.set("echo-marked", Behavior.echo_headers())
    spec = server.spec("echo-marked", api_key=SecretStr(key), client_secret=secret,
                       extra_headers={"X-Org-Sig": extra}, secret_params=("organization",), organization="org-" + secret[:6])
    text = repr(spec) + str(spec) + repr(spec.public_dict())
    for value in (key, extra, secret):
        assert value not in text
    assert "***" in text
    router = Router([spec], store=str(tmp_path / "m.duckdb"), timeout_s=5)
    with pytest.raises(AllModelsFailedError) as info:
        router.complete([{"role": "user", "content": "hi"}])
    assert server.requests("echo-marked")[-1].headers.get("authorization") == f"Bearer {key}"  # unwrapped
    stored = everything_stored(router, tmp_path) + repr(info.value.attempts)
    for value in (key, extra):
        assert value not in stored and value[4:16] not in stored
    router.close()


def test_a_stream_error_raised_to_the_caller_is_scrubbed() -> None:
    from adaptroute.secrecy import scrub_exception

    key = odd_key(string.ascii_letters, 30)
    inner = ValueError(f"upstream said key={key}")
    try:
        try:
            raise inner
        except ValueError as exc:
            raise RuntimeError(f"stream broke for {key}") from exc
    except RuntimeError as outer:
        scrub_exception(outer, {key})
        assert key not in str(outer) and key not in str(outer.__cause__)


def test_the_registry_finds_credentials_by_where_they_sit_not_their_shape() -> None:
    params = {
        "api_key": "aaaa1111bbbb", "temperature": 0.2, "max_tokens": 2048, "input_cost_per_token": 1e-6,
        "api_base": "https://bobby:hunter2hunter2@example.test/v1?sig=zzzz9999qqqq",
        "extra_headers": {"X-Anything": "hdr-value-1234"}, "vertex_credentials": '{"private_key": "pkpkpkpk1234"}',
        "clientSecret": "cs-1234567890", "nested": {"session_token": "tok-0987654321"},
    }
    found = set(secret_values(params))
    assert {"aaaa1111bbbb", "bobby", "hunter2hunter2", "zzzz9999qqqq", "hdr-value-1234", "pkpkpkpk1234",
            "cs-1234567890", "tok-0987654321"} <= found
    assert "2048" not in found and "0.2" not in found  # max_tokens counts tokens; it is no credential
    masked = repr(mask_params(params))
    for value in found - {"bobby"}:
        assert value not in masked
    assert "2048" in masked
    # an echo of the middle of a key, in another case, URL-encoded or base64, is removed too
    key = "Zq8/Lm+Tn3Wr7Yp2Vb5="
    for echo in (key[3:15], key.upper(), "Zq8%2FLm%2BTn3Wr7Yp2Vb5%3D", base64.b64encode(key.encode()).decode()):
        assert "***" in scrub(f"bad key {echo} given", [key], environment=False)
    assert scrub("nothing secret here, 2048 tokens", [key], environment=False) == "nothing secret here, 2048 tokens"
