"""Absurd numbers in raw drawings are a named quarantine reason, never a crash of the class or a silent value.

Before: a coordinate of 1e300 made ``fetch --format raw --simplify`` exit 2 ("negative dimensions are not
allowed") with the class left empty; 1e39 silently became a ``[255, 0]`` drawing; without ``--simplify``
``inf`` was stored (float32 overflow).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from quickdraw.pipeline.fetch import FetchOptions, fetch


def _rec(key: int, xs: list[float], ys: list[float]) -> bytes:
    return orjson.dumps({"word": "cat", "countrycode": "US", "timestamp": "2017-03-26 18:43:54.78083 UTC",
                         "recognized": True, "key_id": str(key),
                         "drawing": [[xs, ys, list(range(len(xs)))]]}) + b"\n"


BAD = {  # key -> coordinates that no screen produces
    101: ([10.0, 1e300, 30.0], [5.0, 6.0, 7.0]),
    102: ([10.0, 20.0, 30.0], [5.0, 1e39, 7.0]),
    103: ([-2e6, 20.0, 30.0], [5.0, 6.0, 7.0]),
}


@pytest.fixture()
def raw_source(tmp_path: Path, shared_data: Path) -> Path:
    src = tmp_path / "raw"
    src.mkdir()
    good = (shared_data / "full" / "raw" / "cat.ndjson").read_bytes().splitlines(keepends=True)[:6]
    lines = good[:3] + [_rec(k, *v) for k, v in BAD.items()] + good[3:]
    (src / "cat.ndjson").write_bytes(b"".join(lines))
    return src


@pytest.mark.parametrize("simplify", [False, True])
def test_absurd_raw_coordinates_are_quarantined(raw_source: Path, tmp_path: Path, simplify: bool) -> None:
    out = tmp_path / ("s" if simplify else "r")
    res = fetch("cat", out, FetchOptions(source=str(raw_source), format="raw", simplify=simplify))
    (c,) = res.classes
    assert c.status == "fetched", c.error
    assert c.rejected == {"out_of_range": 3}
    assert c.accepted == 6  # every good neighbour kept
    q = [json.loads(line) for line in (out / "cat" / "_quarantine.ndjson").read_text().splitlines()]
    assert sorted(r["line"] for r in q) == [4, 5, 6] and {r["reason"] for r in q} == {"out_of_range"}
    table = pq.read_table(out / "cat")
    assert 101 not in table.column("key_id").to_pylist()
    d = table.column("drawing").combine_chunks()
    for name in ("x", "y"):
        v = d.field(name).values.to_numpy(zero_copy_only=False).astype(np.float64)
        assert np.isfinite(v).all()
        if simplify:
            assert v.min() >= 0 and v.max() <= 255
    shutil.rmtree(out)
