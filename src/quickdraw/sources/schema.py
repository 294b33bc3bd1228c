"""The Arrow schema of fetched drawings (see docs/FORMATS.md section 1) and a slow, obviously-correct builder.

``table_from_records`` is the reference: the streaming parser must produce exactly the same table for the
same records, and tests use it to write fetch-format Parquet without a bucket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

__all__ = ["DRAWING_SCHEMA", "SCHEMA_VERSION", "STROKE_TYPE", "parse_timestamp", "table_from_records"]

SCHEMA_VERSION = 1

STROKE_TYPE = pa.struct([pa.field("x", pa.list_(pa.uint8())), pa.field("y", pa.list_(pa.uint8()))])

DRAWING_SCHEMA = pa.schema(
    [
        pa.field("key_id", pa.uint64(), nullable=False),
        pa.field("word", pa.string(), nullable=False),
        pa.field("countrycode", pa.string()),
        pa.field("timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("recognized", pa.bool_(), nullable=False),
        pa.field("n_strokes", pa.uint16(), nullable=False),
        pa.field("n_points", pa.uint32(), nullable=False),
        pa.field("drawing", pa.list_(STROKE_TYPE), nullable=False),
    ]
)


def parse_timestamp(text: str) -> dt.datetime:
    """Parse the dataset's ``"2017-03-01 12:00:00.12345 UTC"`` form into an aware datetime."""
    body = text[:-4] if text.endswith(" UTC") else text
    return dt.datetime.fromisoformat(body).replace(tzinfo=dt.timezone.utc)


def table_from_records(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a :data:`DRAWING_SCHEMA` table from already-valid ndjson records (dicts as in the source)."""
    cols: dict[str, list[Any]] = {f.name: [] for f in DRAWING_SCHEMA}
    for r in records:
        drawing = r["drawing"]
        cols["key_id"].append(int(r["key_id"]))
        cols["word"].append(r["word"])
        cols["countrycode"].append(r.get("countrycode"))
        ts = r.get("timestamp")
        cols["timestamp"].append(parse_timestamp(ts) if isinstance(ts, str) else ts)
        cols["recognized"].append(bool(r["recognized"]))
        cols["n_strokes"].append(len(drawing))
        cols["n_points"].append(sum(len(s[0]) for s in drawing))
        cols["drawing"].append([{"x": list(s[0]), "y": list(s[1])} for s in drawing])
    return pa.Table.from_pydict(cols, schema=DRAWING_SCHEMA)
