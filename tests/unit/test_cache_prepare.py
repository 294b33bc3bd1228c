"""The real chain on real drawings: fetch-format Parquet -> prepare -> build_cache -> load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import quickdraw as qd
from quickdraw.cache import build_cache, verify
from quickdraw.pipeline.prepare import prepare
from quickdraw.sources.schema import SCHEMA_VERSION, table_from_records


def _fetched(shared_data: Path, raw: Path) -> Path:
    for word in ("cat", "apple", "bee"):
        lines = (shared_data / "full" / "simplified" / f"{word}.ndjson").read_text(encoding="utf-8").splitlines()
        d = raw / word
        d.mkdir(parents=True)
        pq.write_table(table_from_records(json.loads(x) for x in lines if x.strip()), d / "part-00000.parquet")
        (d / "_manifest.json").write_text(json.dumps({"word": word, "schema_version": SCHEMA_VERSION}))
    return raw


def test_prepare_output_caches_and_loads(shared_data: Path, tmp_path: Path) -> None:
    raw = _fetched(shared_data, tmp_path / "raw")
    prepare(raw, tmp_path / "strokes", normalize=True)
    cv = build_cache(tmp_path / "strokes", tmp_path / "cache", "real")
    assert verify(cv).ok
    assert build_cache(tmp_path / "strokes", tmp_path / "cache", "real").version == cv.version
    s3 = cv.manifest["formats"]["stroke3"]
    assert s3["norm_scale"] == s3["upstream_scale"] or abs(s3["norm_scale"] - s3["upstream_scale"]) < 1e-4
    for fmt in ("stroke3", "stroke5"):
        for split in cv.splits(fmt):
            ds = qd.load("real", split=split, format=fmt, root=tmp_path / "cache")
            rows = pq.read_table(tmp_path / "strokes" / fmt / split).to_pylist()
            assert len(ds) == len(rows) and ds.classes == ["apple", "bee", "cat"]
            for i in (0, len(ds) - 1):
                np.testing.assert_array_equal(ds[i][0], np.array(rows[i]["sequence"], np.int16))
                assert ds[i][1] == rows[i]["label"] and ds.key_ids[i] == rows[i]["key_id"]
    s5 = qd.load("real", format="stroke5", root=tmp_path / "cache")
    assert s5[0][0][-1].tolist() == [0, 0, 0, 0, 1]


def test_cache_build_after_prepare_of_one_format(shared_data: Path, tmp_path: Path) -> None:
    """`prepare --formats stroke3` then `cache build` with no --formats: caches stroke3 (was: stroke5 missing)."""
    from typer.testing import CliRunner

    from quickdraw.cli.app import app

    prepare(_fetched(shared_data, tmp_path / "raw"), tmp_path / "strokes", formats=("stroke3",))
    res = CliRunner().invoke(app, ["cache", "build", "--in", str(tmp_path / "strokes"), "--name", "real",
                                   "--root", str(tmp_path / "cache"), "--json"])
    assert res.exit_code == 0, res.output
    assert list(json.loads(res.stdout)["formats"]) == ["stroke3"]
    assert len(qd.load("real", root=tmp_path / "cache")) > 0
