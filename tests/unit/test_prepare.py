"""The prepare stage on small synthetic fetch outputs: contract, determinism, dedup, splits, CLI."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.pipeline.prepare import (
    SPLITS,
    PrepareError,
    assign_splits,
    output_schema,
    prepare,
    split_uniform,
)
from quickdraw.sources.parquet import fetched_classes, scan_fetched
from quickdraw.sources.schema import SCHEMA_VERSION, table_from_records
from quickdraw.strokes import drawing_to_stroke3, stroke3_to_stroke5

# ----------------------------------------------------------------------------------------------- helpers


def make_records(word: str, n: int, seed: int, key_base: int = 0, n_points: tuple[int, int] = (2, 40)) -> list[dict[str, Any]]:
    """Synthetic records in the ndjson shape, with point counts spread around the length rules."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        total = int(rng.integers(*n_points))
        cuts = np.sort(rng.choice(np.arange(1, total), size=min(total - 1, int(rng.integers(0, 4))), replace=False)) if total > 1 else []
        bounds = [0, *map(int, cuts), total]
        drawing = [
            [rng.integers(0, 256, b - a).tolist(), rng.integers(0, 256, b - a).tolist()] for a, b in itertools.pairwise(bounds)
        ]
        recs.append(
            {
                "word": word,
                "countrycode": ["US", "GB", "DE", None][i % 4],
                "timestamp": f"2017-03-{1 + i % 28:02d} 18:43:54.78083 UTC",
                "recognized": bool(i % 3),
                "key_id": str(key_base + int(rng.integers(1, 2**63))),
                "drawing": drawing,
            }
        )
    return recs


def write_fetched(root: Path, word: str, records: list[dict[str, Any]], part_rows: int = 40, complete: bool = True) -> Path:
    """Write one class exactly as fetch does (FORMATS section 1): parts, then the manifest last."""
    d = root / word
    d.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(0, max(len(records), 1), part_rows):
        f = d / f"part-{i // part_rows:05d}.parquet"
        pq.write_table(table_from_records(records[i : i + part_rows]), f)
        parts.append({"file": f.name, "rows": len(records[i : i + part_rows]), "sha256": hashlib.sha256(f.read_bytes()).hexdigest()})
    if complete:
        manifest = {"word": word, "source_url": f"mem://{word}.ndjson", "counts": {"read": len(records), "accepted": len(records)}, "parts": parts, "schema_version": SCHEMA_VERSION}
        (d / "_manifest.json").write_text(json.dumps(manifest))
    return d


def read_split(out: Path, fmt: str, split: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in sorted((out / fmt / split).glob("part-*.parquet")):
        rows += pq.read_table(p).to_pylist()
    return rows


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def fetched(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    write_fetched(root, "cat", make_records("cat", 90, 1))
    write_fetched(root, "dog", make_records("dog", 70, 2))
    write_fetched(root, "ant", make_records("ant", 10, 3), complete=False)  # interrupted fetch: ignored
    return root


# ----------------------------------------------------------------------------------------------- splits


def test_split_uniform_is_uniform_and_seeded() -> None:
    ids = np.arange(1, 200_001, dtype=np.uint64) * np.uint64(7919)  # structured ids must still spread
    u = split_uniform(ids, 0)
    assert 0 <= u.min() and u.max() < 1
    counts = np.bincount(assign_splits(ids, 0, (0.8, 0.1, 0.1)), minlength=3) / len(ids)
    np.testing.assert_allclose(counts, [0.8, 0.1, 0.1], atol=0.005)
    assert (assign_splits(ids, 1) != assign_splits(ids, 0)).mean() > 0.2
    assert set(np.unique(assign_splits(ids, 0, (1.0, 0.0, 0.0)))) == {0}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=200, unique=True), st.integers(0, 2**32), st.integers(0, 199))
def test_split_of_a_key_ignores_everything_else(keys: list[int], seed: int, cut: int) -> None:
    ids = np.array(keys, dtype=np.uint64)
    full = assign_splits(ids, seed)
    np.testing.assert_array_equal(assign_splits(ids, seed), full)  # deterministic
    np.testing.assert_array_equal(assign_splits(ids[cut:], seed), full[cut:])  # no dependence on neighbours
    np.testing.assert_array_equal(assign_splits(ids[::-1], seed), full[::-1])  # nor on order


def test_bad_fractions(fetched: Path, tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="fractions"):
        prepare(fetched, tmp_path / "o", fractions=(0.8, 0.3, 0.1))


# ----------------------------------------------------------------------------------------------- prepare


def test_reading_helpers_see_complete_classes_only(fetched: Path) -> None:
    assert fetched_classes(fetched) == ["cat", "dog"]
    assert scan_fetched(fetched).count_rows() == 160


def test_schema_1_fetch_output_is_refused_with_a_way_out(fetched: Path, tmp_path: Path) -> None:
    from quickdraw.errors import FetchSchemaError
    from quickdraw.pipeline.show import load_sample

    man_path = fetched / "dog" / "_manifest.json"
    man = json.loads(man_path.read_text())
    man_path.write_text(json.dumps({**man, "schema_version": 1}))
    for call in (lambda: prepare(fetched, tmp_path / "o"), lambda: load_sample(fetched, n=2),
                 lambda: scan_fetched(fetched)):
        with pytest.raises(FetchSchemaError, match=r"dog/_manifest.json: fetch schema version 1.*quickdraw fetch"):
            call()
    assert not (tmp_path / "o").exists()  # refused before any work
    res = runner.invoke(app, ["prepare", "--in", str(fetched), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "schema version 1" in res.output and "Traceback" not in res.output


def test_contract_and_content(fetched: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = prepare(fetched, out, min_len=6, max_len=30)
    assert res.classes == ["cat", "dog"]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["classes"] == ["cat", "dog"] and manifest["counts"]["splits"] == res.split_counts
    assert not list(out.rglob("*.incomplete"))
    source = {int(r["key_id"]): r for w in ("cat", "dog") for r in make_records(w, 90 if w == "cat" else 70, 1 if w == "cat" else 2)}
    seen: dict[int, str] = {}
    for split in SPLITS:
        rows3 = read_split(out, "stroke3", split)
        rows5 = read_split(out, "stroke5", split)
        assert len(rows3) == len(rows5) == res.split_counts[split]
        schema = pq.read_schema(out / "stroke3" / split / "part-00000.parquet")
        assert schema.remove_metadata() == output_schema("stroke3")
        meta = json.loads(schema.metadata[b"quickdraw"])
        assert meta["classes"] == ["cat", "dog"] and meta["split"] == split and meta["format"] == "stroke3"
        assert meta["params"]["max_len"] == 30 and meta["input_fingerprint"] == res.input_fingerprint and meta["scale"] is None
        keys = [(r["label"], r["key_id"]) for r in rows3]
        assert keys == sorted(keys)  # rows sorted by (label, key_id)
        for r3, r5 in zip(rows3, rows5):
            assert r3["key_id"] == r5["key_id"] and r5["length"] == r3["length"] + 1
            assert r3["key_id"] not in seen  # no drawing in two splits
            seen[r3["key_id"]] = split
            src = source[r3["key_id"]]
            expect = drawing_to_stroke3(src["drawing"])
            assert r3["word"] == src["word"] and r3["label"] == ["cat", "dog"].index(src["word"])
            assert r3["countrycode"] == src["countrycode"] and r3["recognized"] == src["recognized"]
            assert r3["n_points"] == len(expect) and r3["n_strokes"] == len(src["drawing"])
            assert 6 <= r3["length"] == min(len(expect), 30) == len(r3["sequence"])
            got = np.array(r3["sequence"], dtype=np.int16)
            np.testing.assert_array_equal(got[:, :2], expect[: len(got), :2])
            np.testing.assert_array_equal(np.array(r5["sequence"]), stroke3_to_stroke5(got))
    expect_short = sum(1 for r in source.values() if sum(len(s[0]) for s in r["drawing"]) < 6)
    expect_long = sum(1 for r in source.values() if sum(len(s[0]) for s in r["drawing"]) > 30)
    assert res.too_short == expect_short and res.truncated == expect_long and res.too_long_dropped == 0
    assert len(seen) == res.kept == 160 - expect_short


def test_on_long_drop(fetched: Path, tmp_path: Path) -> None:
    trunc = prepare(fetched, tmp_path / "t", max_len=30)
    drop = prepare(fetched, tmp_path / "d", max_len=30, on_long="drop")
    assert drop.too_long_dropped == trunc.truncated > 0 and drop.truncated == 0
    assert drop.kept == trunc.kept - trunc.truncated
    assert all(r["n_points"] <= 30 for s in SPLITS for r in read_split(tmp_path / "d", "stroke3", s))


def test_byte_identical_reruns(fetched: Path, tmp_path: Path) -> None:
    prepare(fetched, tmp_path / "a", normalize=True, seed=3)
    prepare(fetched, tmp_path / "b", normalize=True, seed=3)
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a.keys() == b.keys() and a == b
    prepare(fetched, tmp_path / "a", normalize=True, seed=3)  # over an existing output too
    assert tree_bytes(tmp_path / "a") == a


def test_batched_conversion_and_row_group_writes_change_no_byte(fetched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Classes are converted a few drawings at a time and written one row group at a time (to bound memory):
    neither the read batch size nor a wrong n_points (only a capacity hint) may change a byte, and the
    row groups stay whole classes cut every ROW_GROUP_ROWS rows."""
    import quickdraw.pipeline.prepare as prep

    monkeypatch.setattr(prep, "ROW_GROUP_ROWS", 8)
    monkeypatch.setattr(prep, "PART_ROWS", 60)
    ref = prepare(fetched, tmp_path / "ref", normalize=True, max_len=30, seed=5)
    for batch_rows in (1, 7, 1000):
        monkeypatch.setattr(prep, "_READ_BATCH_ROWS", batch_rows)
        prepare(fetched, tmp_path / f"b{batch_rows}", normalize=True, max_len=30, seed=5)
        assert tree_bytes(tmp_path / f"b{batch_rows}") == tree_bytes(tmp_path / "ref")
    # Too small and too large capacity hints: the steps buffer grows or is trimmed, the output is the same.
    for factor in (0, 3):
        real = prep._class_stroke3
        monkeypatch.setattr(prep, "_class_stroke3", lambda *a, f=factor, real=real: real(*a[:-1], None if a[-1] is None else a[-1] * f))
        prepare(fetched, tmp_path / f"h{factor}", normalize=True, max_len=30, seed=5)
        monkeypatch.setattr(prep, "_class_stroke3", real)
        assert tree_bytes(tmp_path / f"h{factor}") == tree_bytes(tmp_path / "ref")
    # Row groups: at most ROW_GROUP_ROWS rows, never spanning two classes; parts roll over at class boundaries.
    counts = ref.per_class
    for split in SPLITS:
        files = sorted((tmp_path / "ref" / "stroke5" / split).glob("part-*.parquet"))
        groups = [pq.ParquetFile(f).metadata.row_group(i).num_rows for f in files for i in range(pq.ParquetFile(f).metadata.num_row_groups)]
        expected = [min(8, counts[w][split] - a) for w in ref.classes for a in range(0, counts[w][split], 8)]
        assert groups == expected
        assert len(files) == (2 if counts["cat"][split] >= 60 and counts["dog"][split] else 1)


def test_duplicates_keep_first(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    cat = make_records("cat", 30, 1, n_points=(10, 20))
    dog = make_records("dog", 30, 2, n_points=(10, 20))
    dup_in_class = dict(cat[3], countrycode="XX")  # same key id, later in the file: dropped
    dup_across = dict(cat[5], word="dog", countrycode="YY")  # same key id in a later class: dropped
    write_fetched(root, "cat", cat + [dup_in_class], part_rows=7)
    write_fetched(root, "dog", [dup_across] + dog)
    res = prepare(root, tmp_path / "out")
    assert res.duplicates == 2 and res.per_class["cat"]["duplicates"] == 1 and res.per_class["dog"]["duplicates"] == 1
    assert res.read == 62 == res.duplicates + res.too_short + res.too_long_dropped + res.kept
    rows = [r for s in SPLITS for r in read_split(tmp_path / "out", "stroke3", s)]
    assert len(rows) == 60 == len({r["key_id"] for r in rows})
    by_key = {r["key_id"]: r for r in rows}
    assert by_key[int(cat[3]["key_id"])]["countrycode"] == cat[3]["countrycode"]
    assert by_key[int(cat[5]["key_id"])]["word"] == "cat"


def test_adding_a_class_moves_nothing(fetched: Path, tmp_path: Path) -> None:
    prepare(fetched, tmp_path / "two")
    write_fetched(fetched, "eel", make_records("eel", 50, 4))
    res = prepare(fetched, tmp_path / "three", classes=["cat", "dog", "eel"])
    assert res.classes == ["cat", "dog", "eel"]

    def where(out: Path) -> dict[int, str]:
        return {r["key_id"]: s for s in SPLITS for r in read_split(out, "stroke3", s)}

    two, three = where(tmp_path / "two"), where(tmp_path / "three")
    assert {k: three[k] for k in two} == two


def test_class_selection_and_errors(fetched: Path, tmp_path: Path) -> None:
    res = prepare(fetched, tmp_path / "o", classes=["dog", "cat"], formats=("stroke3",))
    assert res.classes == ["dog", "cat"]  # labels follow the order given
    assert not (tmp_path / "o" / "stroke5").exists()
    both = prepare(fetched, tmp_path / "p", formats=("stroke5", "stroke3"))
    assert json.loads((tmp_path / "p" / "_manifest.json").read_text())["formats"] == ["stroke3", "stroke5"]
    assert both.split_counts == prepare(fetched, tmp_path / "q").split_counts
    assert read_split(tmp_path / "o", "stroke3", "train")[0]["word"] == "dog"
    with pytest.raises(PrepareError, match="'ant'"):
        prepare(fetched, tmp_path / "o", classes=["cat", "ant"])
    with pytest.raises(PrepareError, match="no complete class"):
        prepare(tmp_path / "o", tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        prepare(tmp_path / "missing", tmp_path / "x")
    with pytest.raises(PrepareError, match="formats"):
        prepare(fetched, tmp_path / "o", formats=("png",))


def test_stale_parts_are_removed(fetched: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare(fetched, out)  # an output folder prepare owns (a stale part in a foreign folder is refused)
    stale = out / "stroke3" / "train" / "part-00007.parquet"
    stale.write_bytes(b"old")
    prepare(fetched, out)
    assert not stale.exists()


def test_normalize_scale_is_train_std(fetched: Path, tmp_path: Path) -> None:
    res = prepare(fetched, tmp_path / "o", normalize=True, max_len=30)
    seqs = np.concatenate([np.array(r["sequence"]) for r in read_split(tmp_path / "o", "stroke3", "train")])
    assert res.scale == pytest.approx(float(np.std(seqs[:, :2].astype(np.float64))), rel=1e-12)
    meta = json.loads(pq.read_schema(tmp_path / "o" / "stroke5" / "test" / "part-00000.parquet").metadata[b"quickdraw"])
    assert meta["scale"] == res.scale


def test_progress_callback(fetched: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    prepare(fetched, tmp_path / "o", progress=lambda d, t, w: calls.append((d, t, w)))
    assert calls == [(1, 2, "cat"), (2, 2, "dog")]


# ----------------------------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_prepare_json(fetched: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = runner.invoke(app, ["prepare", "--in", str(fetched), "--out", str(out), "--max-len", "30", "--on-long", "drop", "--fractions", "0.5,0.25,0.25", "--seed", "7", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["classes"] == ["cat", "dog"] and sum(doc["split_counts"].values()) == doc["kept"]
    params = json.loads((out / "_manifest.json").read_text())["params"]
    assert params == {"min_len": 6, "max_len": 30, "on_long": "drop", "fractions": [0.5, 0.25, 0.25], "seed": 7, "normalize": False}


def test_cli_prepare_table_help_and_errors(fetched: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["prepare", "--in", str(fetched), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0 and "total" in r.stdout
    assert "Example" in runner.invoke(app, ["prepare", "--help"]).stdout
    bad = runner.invoke(app, ["prepare", "--in", str(fetched), "--out", str(tmp_path / "o"), "--fractions", "0.9,0.9,0.1"])
    assert bad.exit_code == 2 and "fractions" in bad.output
    assert runner.invoke(app, ["prepare", "--in", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]).exit_code == 2
    assert runner.invoke(app, ["prepare", "--in", str(fetched), "--out", str(tmp_path / "o"), "--on-long", "cut"]).exit_code == 2
