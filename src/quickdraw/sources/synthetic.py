"""Synthetic simplified-ndjson records (valid, deterministic) for tests and benchmarks of the source readers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import orjson

__all__ = ["synthetic_records", "to_ndjson"]

_COUNTRIES = ("US", "GB", "DE", "BR", "FR", "JP", "CA", "RU")
_T0 = int(dt.datetime(2017, 1, 1, tzinfo=dt.timezone.utc).timestamp())


def synthetic_records(n: int, word: str = "cat", seed: int = 0, max_strokes: int = 8,
                      max_points: int = 40) -> list[dict[str, Any]]:
    """``n`` valid drawings shaped like the public simplified files (coordinates 0..255, timestamps with
    microseconds, 2-letter country codes)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ns = int(rng.integers(1, max_strokes + 1))
        drawing = []
        for _ in range(ns):
            m = int(rng.integers(1, max_points + 1))
            drawing.append([rng.integers(0, 256, m).tolist(), rng.integers(0, 256, m).tolist()])
        secs = _T0 + int(rng.integers(0, 86400 * 365))
        us = int(rng.integers(0, 1_000_000))
        when = dt.datetime.fromtimestamp(secs, dt.timezone.utc).replace(tzinfo=None)
        out.append({
            "word": word,
            "countrycode": _COUNTRIES[int(rng.integers(len(_COUNTRIES)))],
            "timestamp": f"{when:%Y-%m-%d %H:%M:%S}.{us:06d}".rstrip("0").rstrip(".") + " UTC",
            "recognized": bool(rng.random() < 0.9),
            "key_id": str(int(rng.integers(1, 2**62)) * 2 + i % 2),
            "drawing": drawing,
        })
    return out


def to_ndjson(records: list[dict[str, Any]]) -> bytes:
    """Records as ndjson bytes, keys in the public files' order."""
    return b"".join(orjson.dumps(r) + b"\n" for r in records)
