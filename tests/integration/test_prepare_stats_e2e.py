"""Real Quick, Draw! drawings through prepare and stats via the CLI, checked against the ndjson directly."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.sources.schema import SCHEMA_VERSION, table_from_records
from quickdraw.strokes import drawing_to_stroke3, stroke3_to_strokes

WORDS = ["monkey", "The Eiffel Tower", "cat", "apple"]  # labels follow this order, not the alphabet
PART_ROWS = 300
runner = CliRunner()


def load_records(shared: Path, word: str) -> list[dict[str, Any]]:
    raw = (shared / "full" / "simplified" / f"{word}.ndjson").read_bytes()
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def write_fetch_dir(root: Path, word: str, records: list[dict[str, Any]]) -> None:
    """FORMATS section 1 by hand: zero-padded parts in source order, then ``_manifest.json`` last."""
    d = root / word
    d.mkdir(parents=True)
    parts = []
    for i in range(0, len(records), PART_ROWS):
        f = d / f"part-{i // PART_ROWS:05d}.parquet"
        chunk = records[i : i + PART_ROWS]
        pq.write_table(table_from_records(chunk), f)
        parts.append({"file": f.name, "rows": len(chunk), "sha256": hashlib.sha256(f.read_bytes()).hexdigest()})
    manifest = {
        "word": word,
        "source_url": f"file://{word}.ndjson",
        "source": {},
        "options": {},
        "counts": {"read": len(records), "accepted": len(records), "filtered": {}, "rejected": {}, "stopped_early": False},
        "parts": parts,
        "schema_version": SCHEMA_VERSION,
    }
    (d / "_manifest.json").write_text(json.dumps(manifest))


def test_prepare_then_stats_on_real_drawings(shared_data: Path, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "strokes"
    records = {w: load_records(shared_data, w) for w in WORDS}
    for w in WORDS:
        write_fetch_dir(raw, w, records[w])
    min_len, max_len = 6, 100

    r = runner.invoke(
        app,
        ["prepare", "--in", str(raw), "--out", str(out), "--classes", ",".join(WORDS), "--min-len", str(min_len),
         "--max-len", str(max_len), "--on-long", "truncate", "--seed", "0", "--normalize", "--json"],
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    s = runner.invoke(app, ["stats", str(out), "--json"])
    assert s.exit_code == 0, s.output
    stats = json.loads(s.stdout)
    assert stats["classes"] == WORDS and result["classes"] == WORDS

    # Independent expectations, straight from the ndjson records.
    for w in WORDS:
        recs = list({int(x["key_id"]): x for x in reversed(records[w])}.values())  # unique key ids
        n_pts = np.array([sum(len(s[0]) for s in x["drawing"]) for x in recs])
        kept = [x for x, n in zip(recs, n_pts) if n >= min_len]
        rows = [row for row in stats["rows"] if row["word"] == w]
        assert sum(row["count"] for row in rows) == len(kept)
        assert stats["drops"][w]["too_short"] == int((n_pts < min_len).sum())
        assert stats["drops"][w]["truncated"] == int((n_pts > max_len).sum())
        assert stats["drops"][w]["duplicates"] == len(records[w]) - len(recs)
        n_rec = sum(row["count"] * row["recognized_share"] for row in rows)
        assert n_rec == pytest.approx(sum(x["recognized"] for x in kept))
        assert max(row["points"]["max"] for row in rows) == max(sum(len(s[0]) for s in x["drawing"]) for x in kept)
        assert max(row["strokes"]["max"] for row in rows) == max(len(x["drawing"]) for x in kept)
        assert max(row["steps"]["max"] for row in rows) == min(max_len, max(n_pts))
        top_overall = Counter(x.get("countrycode") or "" for x in kept).most_common(1)[0][0]
        assert top_overall in {c for row in rows for c, _ in row["top_countries"]}
    assert result["truncated"] > 0  # max_len=100 cuts some monkeys, so truncation is exercised
    assert stats["total"] == result["kept"] == sum(stats["splits"].values())
    assert stats["scale"] == result["scale"] and stats["scale"] > 0

    # Spot-check that sequences decode back to the source drawings (untruncated ones exactly).
    by_key = {int(x["key_id"]): x for w in WORDS for x in records[w]}
    table = pq.read_table(out / "stroke3" / "val").to_pylist()
    assert table
    for row in table[:: max(1, len(table) // 40)]:
        src = by_key[row["key_id"]]
        seq = np.array(row["sequence"], dtype=np.int16)
        if row["n_points"] <= max_len:
            assert stroke3_to_strokes(seq) == [[list(s[0]), list(s[1])] for s in src["drawing"]]
        else:
            np.testing.assert_array_equal(seq[:, :2], drawing_to_stroke3(src["drawing"])[:max_len, :2])
        assert row["label"] == WORDS.index(src["word"])
