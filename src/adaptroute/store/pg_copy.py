"""Buffered rows (store.buffer) into PostgreSQL's binary COPY format.

Scalars go through psycopg's C dumpers. Array columns are encoded here into PostgreSQL's binary array
format and handed over as raw bytes: feature vectors for a whole batch in one NumPy operation when
they share a length (the usual case), and the few distinct lists of model names once each. psycopg's
own list dumper converted every element in Python and made COPY three times slower.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from .schema import ARROW_SCHEMAS

__all__: list[str] = []  # internal to adaptroute.store

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds: PostgreSQL's timestamp origin
_FLOAT4, _FLOAT8, _TEXT = 700, 701, 25  # element type oids
_HEADER = struct.Struct(">iiiii")  # ndim, has nulls, element oid, length, lower bound
_EMPTY = struct.pack(">iii", 0, 0, 0)


def _float4_arrays(values: list[Any]) -> list[bytes | None]:
    if values and all(isinstance(v, np.ndarray) for v in values):
        lengths = {v.shape[0] for v in values}
        if len(lengths) == 1 and (k := lengths.pop()) > 0:
            n = len(values)
            block = np.empty((n, 5 + 2 * k), dtype=">i4")
            block[:, :5] = (1, 0, _FLOAT4, k, 1)
            block[:, 5::2] = 4
            block[:, 6::2] = np.stack(values).astype(">f4", copy=False).view(">i4")
            raw, size = block.tobytes(), block.shape[1] * 4
            return [raw[i * size : (i + 1) * size] for i in range(n)]
    return [None if v is None else _float_array(v, ">f4", _FLOAT4) for v in values]


def _float_array(value: Any, dtype: str, oid: int) -> bytes:
    arr = np.asarray(value, dtype=dtype).ravel()
    k = arr.shape[0]
    if k == 0:
        return _EMPTY[:8] + struct.pack(">i", oid)
    width = arr.dtype.itemsize
    body = np.empty((k, 1 + width // 4), dtype=">i4")
    body[:, 0] = width
    body[:, 1:] = arr.view(">i4").reshape(k, width // 4)
    return _HEADER.pack(1, 0, oid, k, 1) + body.tobytes()


def _float8_arrays(values: list[Any]) -> list[bytes | None]:
    cache: dict[Any, bytes] = {}
    out: list[bytes | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        key = v if isinstance(v, tuple) else None
        encoded = cache.get(key) if key is not None else None
        if encoded is None:
            k = len(v)
            encoded = (_HEADER.pack(1, 0, _FLOAT8, k, 1) + struct.pack(">" + "id" * k, *[x for f in v for x in (8, f)])
                       if k else _EMPTY[:8] + struct.pack(">i", _FLOAT8))
            if key is not None and len(cache) < 4096:
                cache[key] = encoded
        out.append(encoded)
    return out


def _text_arrays(values: list[Any]) -> list[bytes | None]:
    cache: dict[Any, bytes] = {}
    out: list[bytes | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        key = tuple(v)
        encoded = cache.get(key)
        if encoded is None:
            parts = [_HEADER.pack(1, 0, _TEXT, len(key), 1) if key else _EMPTY[:8] + struct.pack(">i", _TEXT)]
            for s in key:
                raw = s.encode()
                parts.append(struct.pack(">i", len(raw)) + raw)
            encoded = cache[key] = b"".join(parts)
        out.append(encoded)
    return out


def _timestamps(values: list[int]) -> list[int]:
    return (np.asarray(values, dtype=np.int64) - PG_EPOCH_US).tolist()


_ENCODERS = {"list<item: float>": _float4_arrays, "list<item: double>": _float8_arrays,
             "list<item: string>": _text_arrays, "timestamp[us, tz=UTC]": _timestamps}


def copy_columns(table: str, columns: tuple[list[Any], ...]) -> list[list[Any]]:
    """The buffered columns of ``table`` as values psycopg's binary COPY writes with COPY_TYPES."""
    out = []
    for field, values in zip(ARROW_SCHEMAS[table], columns, strict=True):
        encode = _ENCODERS.get(str(field.type))
        out.append(encode(values) if encode else values)
    return out
