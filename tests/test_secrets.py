"""Secrets and stored text: API keys never reach the log file or the console even when the provider
echoes them; prompt text is stored only on opt-in; hostile task and model names are stored verbatim."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adaptroute import AllModelsFailedError, ConfigError, LogStore, ModelSpec, Router, read_log
from adaptroute.config import SECRET_PARAM_NAMES
from adaptroute.testing import Behavior, FakeOpenAI, fake_openai


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as s:
        yield s


def file_bytes(path: Path) -> bytes:
    """The log file and any write-ahead log beside it."""
    data = path.read_bytes()
    wal = Path(f"{path}.wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def rows_containing(path: Path, needle: str) -> list[tuple[str, str, int]]:
    """(table, column, rows) for every text or list column whose values contain ``needle``."""
    found = []
    with LogStore(path) as store:
        columns = store.query(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type LIKE 'VARCHAR%' AND table_schema = 'main'"
        )
        for table, column in columns:
            sql = f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS VARCHAR) LIKE ?'  # test-only SQL
            n = store.query(sql, [f"%{needle}%"])[0][0]
            if n:
                found.append((table, column, n))
    return found


def test_api_keys_never_reach_the_log_or_the_console(server: FakeOpenAI, tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    spec_token, plain_token, call_token = (uuid.uuid4().hex for _ in range(3))
    spec_key = f"sk-fake-{spec_token}"  # key-shaped: the pattern scrubber knows its shape as well
    plain_key = f"tenant{plain_token}"  # not key-shaped: only the known-secret scrubber catches it
    call_key = f"percall{call_token}"  # a per-call api_key= kwarg, not key-shaped either
    canary = f"canary-{uuid.uuid4().hex}"  # stored on purpose (a task name): the byte search can see text
    server.set("leaky-a", Behavior.echo_key())
    server.set("leaky-b", Behavior.echo_key(status=400))
    path = tmp_path / "log.duckdb"
    specs = [server.spec("leaky-a", api_key=spec_key), server.spec("leaky-b", api_key=plain_key), server.spec("fine")]
    router = Router(specs, store=str(path), seed=4, timeout_s=5)
    print(specs, router)  # what a user might print while debugging

    failures: list[AllModelsFailedError] = []
    # only the leaky models, sharing the first router's log (one writer per file and process)
    all_leaky = Router(specs[:2], store=router.store, seed=1, timeout_s=5)
    for kwargs in ({}, {"api_key": call_key}, {}, {"api_key": call_key}):
        with pytest.raises(AllModelsFailedError) as info:
            all_leaky.complete([{"role": "user", "content": "hello"}], task=canary, **kwargs)
        failures.append(info.value)
        print("routing failed:", info.value, info.value.attempts)
    answered = 0
    for i in range(30):
        kwargs = {"api_key": call_key} if i % 2 else {}
        response = router.complete([{"role": "user", "content": f"question {i}"}], task=canary, **kwargs)
        print(response.adaptroute.attempts)
        answered += response.adaptroute.model == "fine"
    assert answered == 30

    # The provider did see, and echo, every key: the test is not vacuous.
    sent = {r.headers.get("authorization", "") for r in server.requests()}
    assert {f"Bearer {spec_key}", f"Bearer {plain_key}", f"Bearer {call_key}"} <= sent
    messages = [a.error_message or "" for f in failures for a in f.attempts]
    assert all("Incorrect API key provided: ***" in m for m in messages), messages
    stored = router.store.query("SELECT error_message FROM attempts WHERE error_class IS NOT NULL")
    assert len(stored) >= 8 and all("***" in m for (m,) in stored)

    router.close()
    data = file_bytes(path)
    assert canary.encode() in data  # text that is meant to be stored is visible to this search
    secrets = [spec_key, plain_key, call_key, spec_token, plain_token, call_token, spec_token[:12],
               plain_token[-12:], call_token[8:20]]
    for secret in secrets:
        assert secret.encode() not in data, f"{secret} found in the log file"
        assert not rows_containing(path, secret)
    out, err = capfd.readouterr()
    assert "routing failed" in out  # the console output was captured
    for secret in secrets:
        assert secret not in out and secret not in err, f"{secret} printed"
    print(f"searched {len(data)} bytes of log and {len(out) + len(err)} characters of output")


def test_prompts_are_not_stored_unless_opted_in(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    secret_prompt = f"confidential-{token}"
    plain = tmp_path / "plain.duckdb"
    with Router(["gpt-4o-mini", "gpt-4o"], store=str(plain)) as router:
        for i in range(3):
            router.complete([{"role": "system", "content": "be brief"},
                             {"role": "user", "content": f"{secret_prompt} #{i}"}], task="t", mock_response="ok")
        hashes = router.store.query("SELECT prompt_hash, prompt_text FROM decisions")
    assert len(hashes) == 3 and all(h and text is None for h, text in hashes)
    assert len({h for h, _ in hashes}) == 3  # distinct prompts, distinct hashes (for dedup)
    assert secret_prompt.encode() not in file_bytes(plain)
    assert not rows_containing(plain, secret_prompt)

    opted = tmp_path / "opted.duckdb"
    with Router(["gpt-4o-mini", "gpt-4o"], store=str(opted), store_prompts=True) as router:
        router.complete([{"role": "user", "content": f"{secret_prompt} #0"}], task="t", mock_response="ok")
        texts = router.store.query("SELECT prompt_text FROM decisions")
    assert len(texts) == 1 and secret_prompt in texts[0][0]
    assert secret_prompt.encode() in file_bytes(opted)


HOSTILE_TASKS = [
    "x'); DROP TABLE decisions; --",
    "Robert'); DELETE FROM outcomes WHERE ('1'='1",
    "' OR 1=1 --",
    'say "hello"',
    "semi;colon;;",
    "back\\slash \\' \\\"",
    "percent %s %(name)s {0} {}",
    "$1 ? :name @p",
    "new\nline and\ttab",
    "unicode: ✓ 日本語 émoji 🚀",
    "a" * 200,
]


def test_hostile_task_and_model_names_are_stored_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "hostile.duckdb"
    odd_model = "model'); DROP TABLE attempts; --"
    specs = [ModelSpec(name=odd_model, litellm_model="gpt-4o-mini"), ModelSpec(name='quoted "model"', litellm_model="gpt-4o")]
    with Router(specs, store=str(path), scorer=lambda m, r: 0.7) as router:
        ids = []
        for task in HOSTILE_TASKS:
            response = router.complete([{"role": "user", "content": task}], task=task, mock_response=task)
            ids.append(response.adaptroute.decision_id)
            router.feedback(response.adaptroute.decision_id, 0.5, source=task)
        for bad in ("", "   ", "b" * 201, 7):
            with pytest.raises(ConfigError):
                router.complete([{"role": "user", "content": "x"}], task=bad, mock_response="ok")  # type: ignore[arg-type]
        assert router.recommend([{"role": "user", "content": "x"}], task=HOSTILE_TASKS[0])
        assert router.retrain() == 1
        counts = router.store.counts()
        tasks = dict(router.store.query("SELECT decision_id, task FROM decisions"))
        sources = dict(router.store.query("SELECT decision_id, source FROM feedback"))
        models = {m for (m,) in router.store.query("SELECT DISTINCT model FROM attempts")}
    n = len(HOSTILE_TASKS)
    assert counts == {"decisions": n, "attempts": n, "outcomes": n, "feedback": n}  # refused calls left no row
    assert [tasks[i] for i in ids] == HOSTILE_TASKS
    assert [sources[i] for i in ids] == HOSTILE_TASKS
    assert models <= {odd_model, 'quoted "model"'}
    batch = read_log(path)
    assert sorted(batch.tasks.tolist()) == sorted(HOSTILE_TASKS)
    assert set(batch.models) <= {odd_model, 'quoted "model"'}


@pytest.mark.parametrize("param", sorted(SECRET_PARAM_NAMES))
def test_every_secret_call_parameter_is_scrubbed(param: str, capfd: pytest.CaptureFixture[str]) -> None:
    secret = f"plain{uuid.uuid4().hex}"  # not key-shaped: only the known-secret scrubber can catch it
    echo = RuntimeError(f"provider rejected credentials {secret} for this request")  # litellm raises it
    with Router(["gpt-4o-mini", "gpt-4o"]) as router:
        with pytest.raises(AllModelsFailedError) as info:
            router.complete([{"role": "user", "content": "hi"}], mock_response=echo, **{param: secret})
        print(info.value, info.value.attempts)
        stored = router.store.query("SELECT error_message FROM attempts")
    assert len(stored) == 2 and all("credentials ***" in m for (m,) in stored), stored
    out, err = capfd.readouterr()
    assert "credentials ***" in out and secret not in out + err
