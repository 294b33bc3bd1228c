"""Stats over fetch output, prepare output and cache versions, checked against numpy on the same rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.pipeline.prepare import SPLITS, prepare
from quickdraw.pipeline.stats import StatsError, compute_stats
from tests.unit.test_prepare import make_records, write_fetched

runner = CliRunner()


@pytest.fixture()
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    write_fetched(raw, "cat", make_records("cat", 60, 11))
    write_fetched(raw, "dog", make_records("dog", 45, 12))
    out = tmp_path / "strokes"
    prepare(raw, out, max_len=25)
    return raw, out


def word_is(word: str) -> pc.Expression:
    return pc.field("word") == word


def check_row(row: dict, n_points: np.ndarray, n_strokes: np.ndarray, recognized: np.ndarray, countries: list) -> None:
    assert row["count"] == len(n_points)
    assert row["recognized_share"] == pytest.approx(recognized.mean())
    for key, values in (("points", n_points), ("strokes", n_strokes)):
        for name, q in (("p5", 5), ("p50", 50), ("p95", 95)):
            assert row[key][name] == pytest.approx(np.percentile(values, q))
        assert row[key]["max"] == values.max()
    top = Counter("" if c is None else c for c in countries).most_common()
    top.sort(key=lambda kv: (-kv[1], kv[0]))
    assert row["top_countries"] == [[c, n] for c, n in top[:3]]


def test_prepare_stats_match_numpy(dirs: tuple[Path, Path]) -> None:
    _, out = dirs
    doc = compute_stats(out)
    assert doc["kind"] == "prepare" and doc["classes"] == ["cat", "dog"]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert doc["splits"] == manifest["counts"]["splits"] and doc["total"] == manifest["counts"]["kept"]
    assert doc["drops"]["cat"]["truncated"] == manifest["counts"]["per_class"]["cat"]["truncated"]
    assert [(r["word"], r["split"]) for r in doc["rows"]] == [(w, s) for w in ("cat", "dog") for s in SPLITS]
    for row in doc["rows"]:
        t = pq.read_table(out / "stroke3" / row["split"]).filter(word_is(row["word"])).to_pydict()
        col = {k: np.array(t[k]) for k in ("n_points", "n_strokes", "recognized", "length")}
        check_row(row, col["n_points"], col["n_strokes"], col["recognized"], t["countrycode"])
        assert row["steps"]["max"] == col["length"].max() <= 25


def test_fetch_stats(dirs: tuple[Path, Path]) -> None:
    raw, _ = dirs
    (raw / "cat" / "_manifest.json").unlink()  # an incomplete class is not counted
    doc = compute_stats(raw)
    assert doc["kind"] == "fetch" and doc["classes"] == ["dog"] and doc["splits"] == {"all": 45}
    recs = make_records("dog", 45, 12)
    (row,) = doc["rows"]
    check_row(
        row,
        np.array([sum(len(s[0]) for s in r["drawing"]) for r in recs]),
        np.array([len(r["drawing"]) for r in recs]),
        np.array([r["recognized"] for r in recs]),
        [r["countrycode"] for r in recs],
    )
    assert doc["drops"]["dog"]["read"] == 45


def test_cache_stats(dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from quickdraw.cache import build_cache
    except ImportError:
        pytest.skip("quickdraw.cache not available")
    _, out = dirs
    monkeypatch.setenv("QUICKDRAW_CACHE", str(tmp_path / "cache"))
    cv = build_cache(out, None, "pets")
    by_name = compute_stats("pets")
    assert by_name["kind"] == "cache" and by_name["version"] == cv.version
    assert by_name["rows"] == compute_stats(out)["rows"]  # same rows, same numbers, whichever stage is read
    assert compute_stats(cv.path)["rows"] == by_name["rows"]


def test_unknown_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_CACHE", str(tmp_path / "cache"))
    with pytest.raises(StatsError):
        compute_stats(tmp_path / "nothing-here")
    r = runner.invoke(app, ["stats", str(tmp_path / "nothing-here")])
    assert r.exit_code == 2 and "not a fetch output" in r.output


def test_cli_stats(dirs: tuple[Path, Path]) -> None:
    raw, out = dirs
    r = runner.invoke(app, ["stats", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == json.loads(json.dumps(compute_stats(out)))
    table = runner.invoke(app, ["stats", str(out)])
    assert table.exit_code == 0 and "cat" in table.stdout and "dropped by prepare" in table.stdout
    assert runner.invoke(app, ["stats", str(raw)]).exit_code == 0
    assert "Example" in runner.invoke(app, ["stats", "--help"]).stdout


def _render_80(doc: dict, wide: bool = False) -> str:
    """The rows table of ``quickdraw stats`` as an 80-column terminal shows it."""
    from rich.console import Console

    from quickdraw.cli.stats import _rows_table

    con = Console(width=80 if not wide else 200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    con.print(_rows_table(doc, wide))
    return con.export_text()


def test_cli_stats_fits_80_columns(tmp_path: Path) -> None:
    # Long real class names and big counts: nothing may be cut to "…" at 80 columns, and names wrap.
    raw = tmp_path / "raw"
    for i, word in enumerate(("The Great Wall of China", "animal migration", "butterfly")):
        write_fetched(raw, word, make_records(word, 40, 20 + i))
    out = tmp_path / "strokes"
    prepare(raw, out, max_len=25)
    for path in (raw, out):
        doc = compute_stats(path)
        for r in doc["rows"]:
            r["count"] = 1_234_567  # the widest count a split of one class will realistically show
        text = _render_80(doc)
        assert "…" not in text and max(len(ln) for ln in text.splitlines()) <= 80, text
        # A name may wrap over lines (beside the row's other cells), but every word of it is there whole.
        words = set(text.split())
        assert {"butterfly", "The", "Great", "Wall", "of", "China", "animal", "migration"} <= words, text
        wide = _render_80(doc, wide=True)
        assert "p5/p50/p95/max" in wide and "…" not in wide
    # Through the CLI too (CliRunner renders at 80 columns): the drops table of prepare and of fetch.
    for path in (raw, out):
        res = runner.invoke(app, ["stats", str(path)])
        assert res.exit_code == 0 and "…" not in res.stdout, res.stdout
    assert runner.invoke(app, ["stats", str(out), "--wide"]).exit_code == 0


def test_cli_stats_shows_data_literally(dirs: tuple[Path, Path]) -> None:
    # A class name or country code with rich markup in it is data: it is printed as written.
    doc = compute_stats(dirs[1])
    doc["rows"][0]["word"] = "[red]cat[/red]"
    doc["rows"][0]["top_countries"] = [["[blink]", 3]]
    text = _render_80(doc, wide=True)
    assert "[red]cat[/red]" in text and "[blink]" in text
