"""Raw source: timing kept as the raw schema variant; the published simplification vs Google's output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.sources.raw import (
    RAW_DRAWING_SCHEMA,
    RAW_DRAWING_TYPE,
    check_raw_record,
    parse_raw_chunk,
    simplification_closeness,
    simplify_drawings,
)
from quickdraw.sources.schema import DRAWING_SCHEMA, strokes_of


def _rec(drawing: list, **kw: object) -> dict:
    return {"word": "cat", "countrycode": "US", "timestamp": "2017-03-26 18:43:54.78083 UTC", "recognized": True,
            "key_id": "123", "drawing": drawing, **kw}


def test_raw_table_keeps_floats_and_timing() -> None:
    recs = [_rec([[[10.5, 20.25], [3.0, 4.0], [0, 17]], [[1], [2], [40]]])]
    data = b"".join(orjson.dumps(r) + b"\n" for r in recs) + b'{"bad json\n' + orjson.dumps(_rec([[[1], [2]]])) + b"\n"
    res = parse_raw_chunk(data, 1, word="cat", at_eof=True)
    assert res.table.schema == RAW_DRAWING_SCHEMA
    assert RAW_DRAWING_SCHEMA.field("drawing").type == RAW_DRAWING_TYPE
    assert RAW_DRAWING_TYPE.names == ["x", "y", "t", "stroke_len"]
    row = res.table.to_pylist()[0]
    assert row["drawing"] == {"x": [10.5, 20.25, 1.0], "y": [3.0, 4.0, 2.0], "t": [0, 17, 40], "stroke_len": [2, 1]}
    assert strokes_of(row["drawing"])[0] == [[10.5, 20.25], [3.0, 4.0], [0, 17]]
    assert (row["n_strokes"], row["n_points"]) == (2, 3)
    assert [(r.line, r.reason) for r in res.rejects] == [(2, "bad_json"), (3, "bad_stroke")]


def test_check_raw_record() -> None:
    assert check_raw_record(_rec([[[1.0], [2.0], [0]]]), "cat") is None
    assert check_raw_record(_rec([[[1.0, 2.0], [2.0], [0, 1]]]))[0] == "xy_length_mismatch"
    assert check_raw_record(_rec([[[1.0], [2.0], [0.5]]]))[0] == "bad_type"
    assert check_raw_record(_rec([]))[0] == "empty_drawing"
    # stroke_len is uint16: a stroke of more than 65,535 points cannot be stored
    big = 65536
    assert check_raw_record(_rec([[[1.0] * big, [2.0] * big, [0] * big]]))[0] == "too_large"
    assert check_raw_record(_rec([[[1.0] * (big - 1), [2.0] * (big - 1), [0] * (big - 1)]])) is None
    assert check_raw_record(_rec([[[1.0], [2.0], [0]]], word="dog"), "cat")[0] == "word_mismatch"


def test_simplify_frames_resamples_and_rdp() -> None:
    # A straight diagonal of many points collapses to its two ends; the frame is 0..255 keeping aspect.
    line = [[list(np.linspace(100, 300, 50)), list(np.linspace(50, 150, 50)), list(range(50))]]
    t = simplify_drawings([_rec(line)], "cat")
    assert t.schema == DRAWING_SCHEMA
    d = strokes_of(t.to_pylist()[0]["drawing"])
    assert len(d) == 1 and d[0][0] == [0, 255] and d[0][1][0] == 0 and d[0][1][1] in (127, 128)
    # A square keeps its 4 corners (plus the closing point). A single point is written twice, as Google's
    # files do (no one-point stroke among their 46,418 strokes of the shared sample): 50 * 255 / 100 = 127.5
    # rounds half to even, to 128.
    sq = [[[0, 100, 100, 0, 0], [0, 0, 100, 100, 0], [0, 1, 2, 3, 4]], [[50.0], [50.0], [9]]]
    row = simplify_drawings([_rec(sq)], "cat").to_pylist()[0]
    assert row["drawing"] == {"x": [0, 255, 255, 0, 0, 128, 128], "y": [0, 0, 255, 255, 0, 128, 128],
                              "stroke_len": [5, 2]}
    d = strokes_of(row["drawing"])
    assert d[0] == [[0, 255, 255, 0, 0], [0, 0, 255, 255, 0]]
    assert d[1] == [[128, 128], [128, 128]]
    assert (row["n_strokes"], row["n_points"]) == (2, 7)
    # Half to even, not half up: in a 0..510 frame x = 1, 3, 5 scale to 0.5, 1.5, 2.5 and round to 0, 2, 2.
    halves = [[[1.0], [0.0], [0]], [[3.0], [0.0], [1]], [[5.0], [0.0], [2]], [[0.0, 510.0], [0.0, 0.0], [3, 4]]]
    assert simplify_drawings([_rec(halves)], "cat").to_pylist()[0]["drawing"]["x"] == [0, 0, 2, 2, 2, 2, 0, 255]


def test_fetch_raw_and_simplified(shared_data: Path, tmp_path: Path) -> None:
    src = str(shared_data / "full" / "raw")
    r = fetch("cat", tmp_path / "raw", FetchOptions(source=src, format="raw")).classes[0]
    assert r.status == "fetched" and r.accepted > 0
    t = pq.read_table(tmp_path / "raw" / "cat" / "part-00000.parquet")
    assert t.schema.remove_metadata() == RAW_DRAWING_SCHEMA
    s = fetch("cat", tmp_path / "simple", FetchOptions(source=src, format="raw", simplify=True)).classes[0]
    assert s.accepted == r.accepted
    ts = pq.read_table(tmp_path / "simple" / "cat" / "part-00000.parquet")
    assert ts.schema.remove_metadata() == DRAWING_SCHEMA
    assert ts["key_id"].equals(t["key_id"])
    manifest = json.loads((tmp_path / "simple" / "cat" / "_manifest.json").read_text())
    assert manifest["options"]["format"] == "raw" and manifest["options"]["simplify"] is True


def test_simplification_is_close_to_googles(shared_data: Path) -> None:
    """The closeness measures on every shared raw/simplified pair (the identical share has its own test in
    tests/unit/test_simplify_parity.py)."""
    from tests.unit.test_simplify_parity import shared_pairs

    mine_in, theirs = shared_pairs(shared_data)
    if len(mine_in) < 100:
        pytest.skip("too few raw/simplified pairs in the shared data")
    mine = simplify_drawings(mine_in, "x").column("drawing").to_pylist()
    c = simplification_closeness(mine, theirs)
    # The Arrow drawings and the same drawings as stroke lists measure the same.
    assert simplification_closeness([strokes_of(d) for d in mine], theirs) == c
    print("closeness", c)
    # Measured on the 3,132 shared pairs (docs/FORMATS.md): 100% same strokes and points, 3,131 identical.
    assert c["same_strokes"] == 1.0
    assert c["same_points"] >= 0.99
    assert c["chamfer_mean_px"] <= 0.01
    assert c["hausdorff_p95_px"] == 0.0
