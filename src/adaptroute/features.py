"""Context features: messages + task -> one float vector per request.

Layout (append-only, so a vector logged yesterday stays valid as tasks are added):
``[bias=1 | length statistics (5) | hashed word n-grams (H) | task one-hot (grows) | task buckets]``.

Per-call work must not grow with the number of distinct tasks: the first ``max_tasks`` (64) tasks get
a coordinate each; from the next one on, ``task_buckets`` (16) coordinates are appended once and every
later task shares one of them, picked by a stable hash of its name. The vector never exceeds
``1 + 5 + H + max_tasks + task_buckets`` entries (118 by default), however many tasks arrive.

Privacy: unkeyed (``key=None``, the default for offline work on datasets), the features are a public
function of the prompt, so whoever holds a vector can check a guessed prompt against it. With a
``key`` (the Router passes its log's prompt-hash key, kept outside the log), the word n-grams are
hashed with a 64-bit seed derived from it, so without the key a guess cannot be matched against them,
and the length statistics are rounded (lengths to 8 steps per doubling, the punctuation share to
1/16), so they narrow a guess down without pinning it. The key never enters ``to_dict()``: only its
fingerprint, so a saved policy is refused by a router holding another key.

The n-gram hashing is a vectorised NumPy equivalent of scikit-learn's HashingVectorizer (signed
hashing trick over lower-cased word uni- and bi-grams, L2-normalised). On this project's machine
HashingVectorizer costs about 0.4 ms per 2 kB prompt (per-call overhead dominates), more than the whole
routing budget, while this hasher costs a few tens of microseconds. ``backend="sklearn"`` gives
HashingVectorizer's exact features for users who prefer them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError
from .messages import prompt_text

__all__ = ["Featurizer", "HashingFeaturizer"]

_MASK64 = (1 << 64) - 1
_PRIME = 0x100000001B3  # odd, hence invertible modulo 2**64
_PRIME_INV = pow(_PRIME, -1, 1 << 64)

# Bytes that belong to a word: ASCII letters, digits, underscore, and every non-ASCII byte (UTF-8
# continuation bytes keep accented and non-Latin words in one token). 1 word, 0 other.
_WORD_BYTE = np.zeros(256, dtype=np.int8)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD_BYTE[_c] = 1
_WORD_BYTE[128:] = 1
# 1 for bytes that are neither word nor white space: punctuation, brackets, operators (code, JSON).
_SYMBOL_BYTE = (1 - _WORD_BYTE).astype(np.int8)
for _c in b" \t\n\r":
    _SYMBOL_BYTE[_c] = 0
# The same maps for bytes.translate: C string calls, cheaper than NumPy calls on a prompt, and unlike
# them they never release the GIL mid-request (which hands the CPU to other threads, litellm's logging).
_WORD_TABLE = _WORD_BYTE.tobytes()  # byte -> b"\x01" in a word, b"\x00" elsewhere
_SYMBOLS = bytes(np.flatnonzero(_SYMBOL_BYTE).tolist())  # deleted to count the symbol bytes

_U33 = np.uint64(33)
_U63 = np.uint64(63)
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_BIGRAM = np.uint64(0x9E3779B97F4A7C15)


def _derive(key: bytes, label: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(hmac.digest(key, label, "sha256")[:8], "big"))


def _coarse(n: int) -> int:
    """``n`` rounded to one of 8 steps per doubling (within about 4.5%): a length that does not pin a prompt."""
    return 0 if n <= 0 else round(2 ** (round(math.log2(n + 1) * 8) / 8)) - 1


def _args(f: HashingFeaturizer) -> dict[str, Any]:
    return {"n_features": f.n_features, "ngram_range": f.ngram_range, "ngram_scale": f.ngram_scale,
            "max_chars": f.max_chars, "backend": f.backend, "max_tasks": f.max_tasks, "task_buckets": f.task_buckets}


def _powers(n: int, base: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    value = 1
    for i in range(n):
        out[i] = value
        value = (value * base) & _MASK64
    return out


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place: spreads the polynomial hash over all bits."""
    h ^= h >> _U33
    h *= _FMIX1
    h ^= h >> _U33
    h *= _FMIX2
    h ^= h >> _U33
    return h


@runtime_checkable
class Featurizer(Protocol):
    """What the router and the replay tools need from a featurizer.

    ``x[0]`` must be the constant 1 (the policies put their priors on it) and features may only ever be
    appended (a new task adds a coordinate at the end), never reordered.
    """

    @property
    def dim(self) -> int: ...

    def transform(self, messages: Sequence[dict[str, Any]], task: str) -> np.ndarray: ...

    def transform_texts(self, texts: Sequence[str], tasks: Sequence[str]) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


class HashingFeaturizer:
    """Task one-hot, length statistics and hashed word n-grams (the default featurizer)."""

    N_LENGTH = 5
    MAX_N_FEATURES = 1 << 16  # bounds on what a description (a policy file) may ask for
    MAX_CHARS = 1 << 20
    MAX_TASKS = 4096

    def __init__(
        self,
        n_features: int = 32,
        ngram_range: tuple[int, int] = (1, 2),
        ngram_scale: float = 0.1,
        max_chars: int = 4096,
        backend: Literal["numpy", "sklearn"] = "numpy",
        tasks: Sequence[str] = (),
        max_tasks: int = 64,
        task_buckets: int = 16,
        key: bytes | None = None,
    ) -> None:
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            raise ConfigError("key must be bytes, at least 16 of them")
        if key is not None and backend != "numpy":
            raise ConfigError("a key applies to the numpy backend's hashing only (scikit-learn's is not keyed)")
        if n_features < 0 or (n_features & (n_features - 1)) != 0 or n_features > self.MAX_N_FEATURES:
            raise ConfigError(f"n_features must be 0 or a power of two up to {self.MAX_N_FEATURES}, got {n_features}")
        if not 0 <= max_tasks <= self.MAX_TASKS or not 1 <= task_buckets <= self.MAX_TASKS:
            raise ConfigError(f"max_tasks must be in [0, {self.MAX_TASKS}] and task_buckets in [1, {self.MAX_TASKS}]")
        if not 64 <= max_chars <= self.MAX_CHARS:
            raise ConfigError(f"max_chars must be in [64, {self.MAX_CHARS}], got {max_chars}")
        lo, hi = ngram_range
        if not 1 <= lo <= hi <= 2:
            raise ConfigError(f"ngram_range must be (1, 1), (1, 2) or (2, 2), got {ngram_range}")
        if not ngram_scale >= 0 or ngram_scale > 1e6:  # NaN fails too
            raise ConfigError(f"ngram_scale must be in [0, 1e6], got {ngram_scale}")
        if backend not in ("numpy", "sklearn"):
            raise ConfigError(f"backend must be 'numpy' or 'sklearn', got {backend!r}")
        self.n_features = n_features
        self.ngram_range = (lo, hi)
        self.ngram_scale = float(ngram_scale)
        self.max_chars = max_chars
        self.backend = backend
        self._tasks: dict[str, int] = {}
        self.max_tasks = int(max_tasks)
        self.task_buckets = int(task_buckets)
        self._bucketed = False  # the shared task buckets were appended (more than max_tasks tasks seen)
        self._bucket_of: dict[str, int] = {}  # cache of bucket coordinates (bounded)
        self._lock = threading.Lock()
        max_bytes = 4 * max_chars + 8  # UTF-8 needs at most 4 bytes a character
        self._pow = _powers(max_bytes, _PRIME)
        self._bucket_mask = np.uint64(max(n_features - 1, 0))
        self._block_pow: tuple[np.ndarray, np.ndarray] | None = None  # for _ngrams_many
        self._inv_pow = _powers(max_bytes, _PRIME_INV)
        self._sklearn: Any = None
        self._seed = _derive(key, b"adaptroute.features.seed") if key is not None else None
        self.key_id = hmac.digest(key, b"adaptroute.features.id", "sha256")[:8].hex() if key is not None else None
        for task in tasks:
            self.task_index(task)

    # -- layout -----------------------------------------------------------------------------------
    @property
    def base_dim(self) -> int:
        return 1 + self.N_LENGTH + self.n_features

    @property
    def dim(self) -> int:
        return self.base_dim + len(self._tasks) + (self.task_buckets if self._bucketed else 0)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def task_index(self, task: str) -> int:
        """Coordinate of ``task``'s one-hot entry; a task seen for the first time gets a new one."""
        index = self._tasks.get(task)
        if index is not None:
            return index
        index = self._bucket_of.get(task)
        if index is not None:
            return index
        with self._lock:
            if task in self._tasks:
                return self._tasks[task]
            if len(self._tasks) < self.max_tasks and not self._bucketed:
                index = self._tasks[task] = self.base_dim + len(self._tasks)
                return index
            self._bucketed = True  # from now on the layout is fixed: no coordinate is ever added again
            digest = hashlib.blake2b(task.encode("utf-8", "replace"), digest_size=8).digest()
            index = self.base_dim + len(self._tasks) + int.from_bytes(digest, "big") % self.task_buckets
            if len(self._bucket_of) < 65_536:
                self._bucket_of[task] = index
            return index

    # -- transforms -------------------------------------------------------------------------------
    def transform(self, messages: Sequence[dict[str, Any]], task: str) -> np.ndarray:
        text, last_user_chars = prompt_text(messages)
        return self._vector(text, task, n_messages=len(messages), last_user_chars=last_user_chars)

    def transform_texts(self, texts: Sequence[str], tasks: Sequence[str]) -> np.ndarray:
        """Features of single-message prompts, one row each (replay of benchmark data)."""
        if len(texts) != len(tasks):
            raise ConfigError(f"{len(texts)} texts but {len(tasks)} tasks")
        for task in dict.fromkeys(tasks):
            self.task_index(task)
        out = np.zeros((len(texts), self.dim))
        windows = [self._window(text) for text in texts]
        encoded = [window.lower().encode("utf-8", "replace") for window in windows]
        grams = None
        if self.backend == "numpy" and self.n_features and self.ngram_scale > 0:
            grams = self._ngrams_many(encoded)  # every text's n-grams in a few array passes
        for i, (text, task) in enumerate(zip(texts, tasks, strict=True)):
            row = self._vector(text, task, n_messages=1, last_user_chars=len(text), window=windows[i],
                               encoded=encoded[i], grams=None if grams is None else grams[i])
            out[i, : row.shape[0]] = row
        return out

    def _vector(
        self,
        text: str,
        task: str,
        *,
        n_messages: int,
        last_user_chars: int,
        window: str | None = None,
        encoded: bytes | None = None,
        grams: np.ndarray | None = None,
    ) -> np.ndarray:
        task_at = self.task_index(task)
        x = np.zeros(self.dim)
        x[0] = 1.0
        window = self._window(text) if window is None else window
        if encoded is None:
            encoded = window.lower().encode("utf-8", "replace")
        # Length statistics, each scaled to roughly [0, 1] so one prior precision fits all coordinates.
        # Centred on a typical request (~1,000 characters, one message) and scaled to a few tenths, so
        # they add little prior variance: the policies' uniform prior then means "no effect" until data
        # says otherwise. Log length for quality effects, linear length for cost (dollars grow with tokens).
        chars = len(text) if self._seed is None else _coarse(len(text))
        last = last_user_chars if self._seed is None else _coarse(last_user_chars)
        x[1] = (np.log1p(chars) - 7.0) / 5.0
        x[2] = min(chars / 8000.0, 2.0)
        x[3] = (np.log1p(last) - 6.5) / 5.0
        x[4] = np.log(max(n_messages, 1)) / 3.0
        if encoded:
            share = float(len(encoded) - len(encoded.translate(None, _SYMBOLS))) / len(encoded)
            x[5] = share if self._seed is None else round(share * 16) / 16
        if self.n_features and self.ngram_scale > 0:
            if grams is None:
                grams = self._sklearn_ngrams(window) if self.backend == "sklearn" else self._ngrams(encoded)
            norm = float(np.sqrt(grams @ grams))
            if norm > 0:
                start = 1 + self.N_LENGTH
                x[start : start + self.n_features] = grams * (self.ngram_scale / norm)
        x[task_at] = 1.0
        return x

    def _window(self, text: str) -> str:
        """Head and tail of a long prompt: instructions tend to sit at the start, the question at the end."""
        if len(text) <= self.max_chars:
            return text
        half = self.max_chars // 2
        return text[:half] + "\n" + text[-half:]

    def _ngrams(self, encoded: bytes) -> np.ndarray:
        # translate() and array methods rather than np.take / np.flatnonzero, whose Python wrappers cost
        # about as much as the work on a short prompt.
        data = np.frombuffer(encoded, dtype=np.uint8)
        word = np.frombuffer(b"\0" + encoded.translate(_WORD_TABLE) + b"\0", dtype=np.int8)
        edges = (word[1:] != word[:-1]).nonzero()[0]  # alternating token starts and ends
        starts, ends = edges[0::2], edges[1::2]
        keep = ends - starts >= 2  # like scikit-learn's default token pattern: 2+ word characters
        starts, ends = starts[keep], ends[keep]
        if starts.size == 0:
            return np.zeros(self.n_features)
        # Polynomial hash of every token from one prefix sum: sum(b_i P^i) over the token, times P^-start.
        # prefix[0] = 0, so a token's sum is prefix[end] - prefix[start] (modulo 2**64, as before).
        prefix = np.zeros(data.size + 1, dtype=np.uint64)
        np.multiply(data, self._pow[: data.size], out=prefix[1:])
        prefix.cumsum(out=prefix)
        h = prefix[ends]
        h -= prefix[starts]
        h *= self._inv_pow[starts]
        lo, hi = self.ngram_range
        if hi == 2 and h.size > 1:
            bigrams = h[:-1] * _BIGRAM
            bigrams += h[1:] ^ _FMIX2
            h = np.concatenate((h, bigrams)) if lo == 1 else bigrams
        if self._seed is not None:
            h ^= self._seed  # keyed: which bucket and sign a word gets depends on the key
        _fmix64(h)
        buckets = (h & self._bucket_mask).astype(np.intp)
        signs = 1.0 - 2.0 * (h >> _U63).astype(np.float64)
        return np.bincount(buckets, weights=signs, minlength=self.n_features)

    def _ngrams_many(self, encoded: Sequence[bytes], block_bytes: int = 1 << 20) -> np.ndarray:
        """_ngrams of many texts at once, (n, n_features): the texts' bytes joined by a space (a token
        never crosses it) and hashed in a few array passes, then counted per (text, bucket). A token's
        hash does not depend on where it sits, and the counts are sums of +-1, so every row equals the
        one-text result exactly."""
        out = np.zeros((len(encoded), self.n_features))
        first = 0
        while first < len(encoded):
            last, size = first, 0
            while last < len(encoded) and (last == first or size + len(encoded[last]) < block_bytes):
                size += len(encoded[last]) + 1
                last += 1
            out[first:last] = self._ngrams_block(encoded[first:last])
            first = last
        return out

    def _block_powers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """P**i and P**-i (mod 2**64) for i < n, by doubling (cached, grown on demand)."""
        if self._block_pow is None or self._block_pow[0].shape[0] < n:
            size = max(n, 1 << 16)
            pw, inv = np.ones(size, dtype=np.uint64), np.ones(size, dtype=np.uint64)
            step, p, q = 1, _PRIME, _PRIME_INV
            while step < size:
                pw[step : 2 * step] = pw[: min(step, size - step)] * np.uint64(p)
                inv[step : 2 * step] = inv[: min(step, size - step)] * np.uint64(q)
                p, q, step = (p * p) & _MASK64, (q * q) & _MASK64, 2 * step
            self._block_pow = (pw, inv)
        return self._block_pow

    def _ngrams_block(self, encoded: Sequence[bytes]) -> np.ndarray:
        n = len(encoded)
        counts = np.zeros((n, self.n_features))
        joined = b" ".join(encoded)
        data = np.frombuffer(joined, dtype=np.uint8)
        word = np.frombuffer(b"\0" + joined.translate(_WORD_TABLE) + b"\0", dtype=np.int8)
        edges = (word[1:] != word[:-1]).nonzero()[0]
        starts, ends = edges[0::2], edges[1::2]
        keep = ends - starts >= 2
        starts, ends = starts[keep], ends[keep]
        if starts.size == 0:
            return counts
        pw, inv = self._block_powers(data.size)
        prefix = np.zeros(data.size + 1, dtype=np.uint64)
        np.multiply(data, pw[: data.size], out=prefix[1:])
        prefix.cumsum(out=prefix)
        h = prefix[ends]
        h -= prefix[starts]
        h *= inv[starts]
        first_byte = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n) + 1) - 1
        text = np.searchsorted(first_byte, starts)  # the text each token belongs to
        lo, hi = self.ngram_range
        # As in _ngrams: a text with a single token keeps it even when only bigrams are asked for.
        unigram = slice(None) if lo == 1 else np.bincount(text, minlength=n)[text] == 1
        hashes, rows = [h[unigram]], [text[unigram]]
        if hi == 2:
            pair = text[:-1] == text[1:]  # consecutive tokens of one text
            bigrams = h[:-1][pair] * _BIGRAM
            bigrams += h[1:][pair] ^ _FMIX2
            hashes.append(bigrams)
            rows.append(text[:-1][pair])
        h, text = np.concatenate(hashes), np.concatenate(rows)
        if self._seed is not None:
            h ^= self._seed
        _fmix64(h)
        buckets = (h & self._bucket_mask).astype(np.intp)
        signs = 1.0 - 2.0 * (h >> _U63).astype(np.float64)
        cells = text * self.n_features + buckets
        return np.bincount(cells, weights=signs, minlength=n * self.n_features).reshape(n, self.n_features)

    def _sklearn_ngrams(self, text: str) -> np.ndarray:
        if self._sklearn is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._sklearn = HashingVectorizer(
                n_features=self.n_features, ngram_range=self.ngram_range, alternate_sign=True, norm=None
            )
        return np.asarray(self._sklearn.transform([text]).toarray()[0], dtype=float)

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "hashing",
            "n_features": self.n_features,
            "ngram_range": list(self.ngram_range),
            "ngram_scale": self.ngram_scale,
            "max_chars": self.max_chars,
            "backend": self.backend,
            "tasks": list(self._tasks),
            "max_tasks": self.max_tasks,
            "task_buckets": self.task_buckets,
            "bucketed": self._bucketed,
            "key_id": self.key_id,  # the key's fingerprint, never the key
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], key: bytes | None = None) -> HashingFeaturizer:
        """The featurizer ``to_dict`` described; a keyed one needs the same ``key`` (checked by its
        fingerprint), an unkeyed one ignores ``key``."""
        if data.get("kind") != "hashing":
            raise ConfigError(f"not a HashingFeaturizer description: kind={data.get('kind')!r}")
        tasks = data.get("tasks", [])
        if not isinstance(tasks, list) or len(tasks) > cls.MAX_TASKS or not all(isinstance(t, str) and len(t) <= 200 for t in tasks):
            raise ConfigError(f"invalid featurizer description: tasks must be a list of at most {cls.MAX_TASKS} names of at most 200 characters")
        try:
            featurizer = cls(
                n_features=int(data["n_features"]),
                ngram_range=tuple(data["ngram_range"]),  # type: ignore[arg-type]
                ngram_scale=float(data["ngram_scale"]),
                max_chars=int(data["max_chars"]),
                backend=data.get("backend", "numpy"),
                max_tasks=max(int(data.get("max_tasks", 64)), len(tasks)),
                task_buckets=int(data.get("task_buckets", 16)),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ConfigError(f"invalid featurizer description: {exc}") from None
        key_id = data.get("key_id")
        if key_id is not None:
            if key is None or hmac.digest(key, b"adaptroute.features.id", "sha256")[:8].hex() != key_id:
                raise ConfigError(
                    f"these features were hashed with another key (fingerprint {key_id!s:.16}): open the "
                    "router's log in the folder whose adaptroute.key it was trained with, or pass that hash_key="
                )
            featurizer = cls(**{**_args(featurizer), "key": key})
        for task in tasks:
            featurizer.task_index(task)
        featurizer._bucketed = bool(data.get("bucketed", False))
        return featurizer
