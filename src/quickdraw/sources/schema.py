"""The Arrow schema of fetched drawings (see docs/FORMATS.md section 1), its builders, and a slow reference.

A drawing is one struct of flat per-drawing lists: all its points' ``x`` and ``y`` in drawing order, and
``stroke_len``, the number of points of each stroke. Schema 1 nested a list per stroke
(``list<struct<x: list, y: list>>``); the flat form holds the same information, converts to stroke-3 with
no per-stroke work, and encodes to Parquet a quarter faster (the per-stroke repetition levels were most of
the cost of writing a part; benchmarks/bench_fetch.py).

``table_from_records`` is the reference: the streaming parser must produce exactly the same table for the
same records, and tests use it to write fetch-format Parquet without a bucket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = [
    "DRAWING_SCHEMA",
    "DRAWING_TYPE",
    "SCHEMA_VERSION",
    "drawing_array",
    "drawing_type",
    "parse_timestamp",
    "strokes_of",
    "table_from_records",
]

SCHEMA_VERSION = 2


def _values(t: pa.DataType) -> pa.DataType:
    return pa.list_(pa.field("item", t, nullable=False))


def drawing_type(point_fields: Mapping[str, pa.DataType]) -> pa.StructType:
    """The drawing struct for per-point columns ``point_fields`` (name -> value type) plus ``stroke_len``."""
    fields = [pa.field(name, _values(t), nullable=False) for name, t in point_fields.items()]
    return pa.struct([*fields, pa.field("stroke_len", _values(pa.uint16()), nullable=False)])


#: ``struct<x: list<uint8>, y: list<uint8>, stroke_len: list<uint16>>`` (no nulls at any level).
DRAWING_TYPE = drawing_type({"x": pa.uint8(), "y": pa.uint8()})

DRAWING_SCHEMA = pa.schema(
    [
        pa.field("key_id", pa.uint64(), nullable=False),
        pa.field("word", pa.string(), nullable=False),
        pa.field("countrycode", pa.string()),
        pa.field("timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("recognized", pa.bool_(), nullable=False),
        pa.field("n_strokes", pa.uint16(), nullable=False),
        pa.field("n_points", pa.uint32(), nullable=False),
        pa.field("drawing", DRAWING_TYPE, nullable=False),
    ]
)


def _offsets(counts: npt.ArrayLike) -> npt.NDArray[np.int32]:
    c = np.asarray(counts)
    o = np.zeros(len(c) + 1, np.int32)
    np.cumsum(c, out=o[1:])
    return o


def drawing_array(
    points: Mapping[str, npt.ArrayLike],
    stroke_pts: npt.ArrayLike,
    n_strokes: npt.ArrayLike,
    type: pa.StructType = DRAWING_TYPE,
) -> pa.StructArray:
    """Build the ``drawing`` column from flat arrays, without a Python loop per drawing.

    ``points`` maps each per-point field of ``type`` (``x``, ``y``; raw drawings also ``t``) to the values of
    all drawings back to back; ``stroke_pts`` is the number of points of every stroke (all drawings back to
    back) and ``n_strokes`` the number of strokes of every drawing. Values are cast to the field types.
    """
    sp = np.asarray(stroke_pts)
    if len(sp) and int(sp.max()) > 0xFFFF:
        raise ValueError(f"a stroke has {int(sp.max())} points; stroke_len holds at most 65535")
    so = _offsets(n_strokes)
    po = _offsets(sp)
    point_off = pa.array(po[so])  # first point of each drawing
    children = []
    for f in type:
        if f.name == "stroke_len":
            children.append(pa.ListArray.from_arrays(pa.array(so), pa.array(sp.astype(np.uint16, copy=False)), type=f.type))
        else:
            vals = np.asarray(points[f.name]).astype(f.type.value_type.to_pandas_dtype(), copy=False)
            children.append(pa.ListArray.from_arrays(point_off, pa.array(vals), type=f.type))
    return pa.StructArray.from_arrays(children, fields=list(type))


def strokes_of(drawing: Mapping[str, Any]) -> list[list[list[Any]]]:
    """One drawing (a ``drawing`` value as Python, e.g. from ``to_pylist()``) as the source's stroke lists.

    ``{"x": [..], "y": [..], "stroke_len": [2, 3]}`` -> ``[[[x0, x1], [y0, y1]], [[x2, x3, x4], [y2, y3, y4]]]``
    (with ``t`` as a third list for raw drawings).
    """
    keys = [k for k in drawing if k != "stroke_len"]
    out: list[list[list[Any]]] = []
    start = 0
    for n in drawing["stroke_len"]:
        out.append([list(drawing[k][start : start + n]) for k in keys])
        start += n
    return out


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
        cols["drawing"].append({
            "x": [v for s in drawing for v in s[0]],
            "y": [v for s in drawing for v in s[1]],
            "stroke_len": [len(s[0]) for s in drawing],
        })
    return pa.Table.from_pydict(cols, schema=DRAWING_SCHEMA)
