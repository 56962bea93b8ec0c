"""Buffered rows (store.buffer) into PostgreSQL's binary COPY format.

Scalars go through psycopg's C dumpers. Array columns are encoded here into PostgreSQL's binary array
format and handed over as raw bytes: feature vectors for a whole batch in one NumPy operation when
they share a length (the usual case), and the few distinct lists of model names once each. psycopg's
own list dumper converted every element in Python and made COPY three times slower.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from .schema import ARROW_SCHEMAS

__all__: list[str] = []  # internal to adaptroute.store

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds: PostgreSQL's timestamp origin
_FLOAT4, _FLOAT8, _TEXT = 700, 701, 25  # element type oids
_HEADER = struct.Struct(">iiiii")  # ndim, has nulls, element oid, length, lower bound
_LENGTH = struct.Struct(">i")


def _empty(oid: int) -> bytes:
    return struct.pack(">iii", 0, 0, oid)  # no dimensions


def _float4_arrays(values: list[Any]) -> list[bytes | None]:
    """Feature vectors: one NumPy pass over the batch when they share a length (the usual case)."""
    if values and all(isinstance(v, np.ndarray) for v in values):
        lengths = {v.shape[0] for v in values}
        if len(lengths) == 1 and (k := lengths.pop()) > 0:
            n = len(values)
            block = np.empty((n, 5 + 2 * k), dtype=">i4")
            block[:, :5] = (1, 0, _FLOAT4, k, 1)
            block[:, 5::2] = 4  # each element's length, then its bits
            block[:, 6::2] = np.stack(values).astype(">f4", copy=False).view(">i4")
            raw, size = block.tobytes(), block.shape[1] * 4
            return [raw[i * size : (i + 1) * size] for i in range(n)]
    return _each(values, _float4_array, cache=False)


def _float8_arrays(values: list[Any]) -> list[bytes | None]:
    """Probabilities: one NumPy pass over the batch when they share a length (one eligible set)."""
    if values and all(v is not None for v in values):
        try:
            matrix = np.array(values, dtype=">f8")
        except ValueError:  # rows of different lengths
            matrix = None
        if matrix is not None and matrix.ndim == 2 and (k := matrix.shape[1]) > 0:
            n = len(values)
            block = np.empty((n, 5 + 3 * k), dtype=">i4")
            block[:, :5] = (1, 0, _FLOAT8, k, 1)
            block[:, 5::3] = 8  # each element's length, then its 8 bytes as two big-endian words
            words = matrix.view(">i4")
            block[:, 6::3] = words[:, 0::2]
            block[:, 7::3] = words[:, 1::2]
            raw, size = block.tobytes(), block.shape[1] * 4
            return [raw[i * size : (i + 1) * size] for i in range(n)]
    return _each(values, _float8_array)


def _float4_array(value: Any) -> bytes:
    arr = np.asarray(value, dtype=">f4").ravel()
    k = arr.shape[0]
    if k == 0:
        return _empty(_FLOAT4)
    body = np.empty((k, 2), dtype=">i4")
    body[:, 0] = 4
    body[:, 1] = arr.view(">i4")
    return _HEADER.pack(1, 0, _FLOAT4, k, 1) + body.tobytes()


def _float8_array(value: Any) -> bytes:
    k = len(value)
    if k == 0:
        return _empty(_FLOAT8)
    return _HEADER.pack(1, 0, _FLOAT8, k, 1) + struct.pack(">" + "id" * k, *[x for f in value for x in (8, f)])


def _text_array(value: Any) -> bytes:
    if not len(value):
        return _empty(_TEXT)
    parts = [_HEADER.pack(1, 0, _TEXT, len(value), 1)]
    for item in value:
        raw = item.encode()
        parts.append(_LENGTH.pack(len(raw)) + raw)
    return b"".join(parts)


def _each(values: list[Any], encode: Callable[[Any], bytes], cache: bool = True) -> list[bytes | None]:
    """``encode`` applied to every non-null value; with ``cache``, each distinct tuple encoded once
    (eligible models and fallback chains repeat a few lists, row after row)."""
    if cache:
        seen: dict[Any, bytes | None] = {None: None}

        def first(v: Any) -> bytes:
            encoded = encode(v)
            if isinstance(v, tuple) and len(seen) < 4096:
                seen[v] = encoded
            return encoded

        try:
            return [seen[v] if v in seen else first(v) for v in values]
        except TypeError:  # an unhashable row (a list): encode them one by one
            pass
    return [None if v is None else encode(v) for v in values]


def _timestamps(values: list[int]) -> list[int]:
    return (np.asarray(values, dtype=np.int64) - PG_EPOCH_US).tolist()


_ENCODERS: dict[str, Callable[[list[Any]], list[Any]]] = {
    "list<item: float>": _float4_arrays,
    "list<item: double>": _float8_arrays,
    "list<item: string>": lambda values: _each(values, _text_array),
    "timestamp[us, tz=UTC]": _timestamps,
}


def copy_columns(table: str, columns: tuple[list[Any], ...]) -> list[list[Any]]:
    """The buffered columns of ``table`` as values psycopg's binary COPY writes with COPY_TYPES."""
    out = []
    for field, values in zip(ARROW_SCHEMAS[table], columns, strict=True):
        encode = _ENCODERS.get(str(field.type))
        out.append(encode(values) if encode else values)
    return out
