"""Where the log's key lives: never in the log file.

The log stores a keyed hash (HMAC-SHA256) of each prompt, and the Router's default features hash the
prompt's words with a seed derived from the same key. With the key in the same file, whoever holds the
file could confirm a guessed prompt; so the key is the caller's (``hash_key=``, from a secret store), or
kept in ``adaptroute.key`` in the log's folder (created with owner-only permissions, shared by the logs
of that folder so that per-process logs, routes-*.duckdb, hash alike), or, for in-memory logs, a random
key of this process. Snapshots and copies of a log file do not carry it.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from ..errors import StoreError

__all__ = ["key_path", "prompt_key"]

log = logging.getLogger("adaptroute.store")


KEY_FILE = "adaptroute.key"
_process_key: bytes | None = None


def key_path(log_path: str) -> Path:
    return Path(os.path.abspath(log_path)).parent / KEY_FILE


def prompt_key(log_path: str, given: bytes | None, legacy: str | None = None) -> bytes:
    """The key for this log: ``given``; else its key file (created if absent, from ``legacy``, the key
    an older adaptroute kept inside the log, when there is one)."""
    if given is not None:
        return given
    if log_path in ("", ":memory:"):
        global _process_key
        if _process_key is None:
            _process_key = secrets.token_bytes(32)
        return _process_key
    path = key_path(log_path)
    try:
        if path.exists():
            key = bytes.fromhex(path.read_text().strip())
            if len(key) < 16:
                raise StoreError(f"the prompt-hash key file {path} holds a key of {len(key)} bytes (at least 16)")
            return key
        key = bytes.fromhex(legacy) if legacy else secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            return prompt_key(log_path, given, None)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        if legacy:
            log.warning("adaptroute: moved the prompt-hash key out of the log %s into %s", log_path, path)
        return key
    except ValueError:
        raise StoreError(f"the prompt-hash key file {path} is not a hex key") from None
    except OSError as exc:
        raise StoreError(f"cannot read or create the prompt-hash key file {path}: {exc}") from None
