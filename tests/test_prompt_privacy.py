"""Prompts stay private without store_prompts=True: the prompt-hash key is never in the log file (it sits
in adaptroute.key beside it, or is the caller's hash_key=), and the logged features are keyed by it, so
whoever holds the log alone can check a guessed prompt neither against its hash nor its features."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import stat
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pytest

from adaptroute import HashingFeaturizer, PolicyStateError, Router
from adaptroute.messages import prompt_hash

MODELS = ["gpt-4o-mini", "gpt-4o"]


def route(path: Path, prompt: str, **kwargs: object) -> tuple[str, np.ndarray]:
    with Router(MODELS, store=str(path), **kwargs) as router:  # type: ignore[arg-type]
        router.complete([{"role": "user", "content": prompt}], task="t", mock_response="ok")
        (h, f), = router.store.query("SELECT prompt_hash, features FROM decisions ORDER BY ts DESC LIMIT 1")
    return h, np.array(f, dtype=np.float32)


def test_the_key_is_kept_outside_the_log_and_survives_a_restart(tmp_path: Path) -> None:
    prompt = f"confidential {uuid.uuid4().hex}"
    path = tmp_path / "routes.duckdb"
    first, _ = route(path, prompt)
    again, _ = route(path, prompt)
    assert first == again  # the same prompt hashes alike across restarts: dedup still works
    key_file = tmp_path / "adaptroute.key"
    key = bytes.fromhex(key_file.read_text())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    data = path.read_bytes() + (Path(f"{path}.wal").read_bytes() if Path(f"{path}.wal").exists() else b"")
    assert key.hex().encode() not in data and key not in data
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM meta WHERE key = 'prompt_hash_key'").fetchone() == (0,)
    con.close()
    assert prompt_hash(prompt, key) == first  # the key outside the file is the one that made the hash


def test_a_callers_hash_key_creates_no_key_file(tmp_path: Path) -> None:
    route(tmp_path / "routes.duckdb", "hello", hash_key=b"from-the-secret-store")
    assert not (tmp_path / "adaptroute.key").exists()


def test_an_older_log_holding_its_key_has_it_moved_out(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    route(path, "first")
    legacy = (tmp_path / "adaptroute.key").read_text()
    (tmp_path / "adaptroute.key").unlink()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO meta VALUES ('prompt_hash_key', ?)", [legacy])  # as an older adaptroute wrote it
    con.close()
    route(path, "second")
    assert (tmp_path / "adaptroute.key").read_text() == legacy  # kept, so older hashes still match
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM meta WHERE key = 'prompt_hash_key'").fetchone() == (0,)
    con.close()


def test_stored_features_cannot_be_matched_against_a_guess_without_the_key(tmp_path: Path) -> None:
    prompt = "please extract the invoice total for ACME Corporation, order 4711, due in March"
    path = tmp_path / "routes.duckdb"
    _, stored = route(path, prompt)
    ngrams = slice(1 + HashingFeaturizer.N_LENGTH, 1 + HashingFeaturizer.N_LENGTH + 32)
    guess = HashingFeaturizer().transform([{"role": "user", "content": prompt}], "t").astype(np.float32)
    assert not np.allclose(stored[ngrams], guess[ngrams], atol=1e-3)  # the unkeyed features do not match
    other_key = HashingFeaturizer(key=os.urandom(32)).transform([{"role": "user", "content": prompt}], "t")
    assert not np.allclose(stored[ngrams], other_key.astype(np.float32)[ngrams], atol=1e-3)
    with Router(MODELS, store=str(tmp_path / "sibling.duckdb")) as router:  # same folder, same key
        own = router._featurizer.transform([{"role": "user", "content": prompt}], "t").astype(np.float32)
    assert np.allclose(stored, own[: stored.shape[0]], atol=1e-6)  # with the key it does: not vacuous
    # the length statistics are rounded: a prompt one character longer gives the same ones
    longer = router._featurizer.transform([{"role": "user", "content": prompt + "."}], "t")
    assert np.allclose(own[1:5], longer[1:5])


def test_unkeyed_features_are_a_stated_opt_in(tmp_path: Path) -> None:
    prompt = "a public benchmark prompt"
    _, stored = route(tmp_path / "open.duckdb", prompt, featurizer=HashingFeaturizer())
    guess = HashingFeaturizer().transform([{"role": "user", "content": prompt}], "t").astype(np.float32)
    assert np.allclose(stored, guess[: stored.shape[0]])


def test_a_policy_trained_under_another_key_is_refused_saying_why(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with Router(MODELS, store=str(tmp_path / "a" / "log.duckdb"), scorer=lambda m, r: 0.7) as router:
        router.complete([{"role": "user", "content": "hi"}], mock_response="ok")
        router.save_policy(str(tmp_path / "policy.npz"))
    with Router(MODELS, store=str(tmp_path / "b" / "log.duckdb")) as other, \
            pytest.raises(PolicyStateError, match="another key.*adaptroute.key.*hash_key="):
        other.load_policy(str(tmp_path / "policy.npz"))
    with Router(MODELS, store=str(tmp_path / "a" / "log2.duckdb")) as same:
        same.load_policy(str(tmp_path / "policy.npz"))  # a log in the same folder shares the key
