"""What is in the data: per class and split counts, recognized share, lengths, countries, drops.

:func:`compute_stats` reads any of

* a **fetch** output directory (docs/FORMATS.md section 1; split ``all``; drops = fetch filters/rejects),
* a **prepare** output directory (section 2; length-rule drops and duplicates from its manifest),
* a **cache** version: a version directory, a name directory, or a cache name resolved through
  :func:`quickdraw.cache.resolve` (section 3; reads ``meta.parquet`` and ``lengths.npy``).

Only small columns are read, lazily through ``polars.scan_parquet``, so 1M drawings take well under a second.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quickdraw.errors import QuickDrawError
from quickdraw.sources.parquet import MANIFEST, class_parts, fetched_classes, read_class_manifest

__all__ = ["PERCENTILES", "TOP_COUNTRIES", "StatsError", "compute_stats"]

log = logging.getLogger(__name__)

#: Percentiles reported for lengths (linear interpolation, as numpy's default).
PERCENTILES: tuple[tuple[str, float], ...] = (("p5", 0.05), ("p50", 0.50), ("p95", 0.95))
TOP_COUNTRIES = 3
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "all": 3}


class StatsError(QuickDrawError):
    """The path is neither a fetch output, a prepare output nor a cache version / name."""


def _length_aggs(col: str, out: str) -> list[pl.Expr]:
    aggs = [pl.col(col).cast(pl.Float64).quantile(q, interpolation="linear").alias(f"{out}_{name}") for name, q in PERCENTILES]
    aggs.append(pl.col(col).max().cast(pl.Int64).alias(f"{out}_max"))
    return aggs


def _summarise(lf: pl.LazyFrame, with_steps: bool) -> list[dict[str, Any]]:
    """Per (word, split) rows from a frame with word, split, recognized, countrycode, n_points, n_strokes[, length]."""
    aggs = [
        pl.len().alias("count"),
        pl.col("recognized").cast(pl.Float64).mean().alias("recognized_share"),
        *_length_aggs("n_points", "points"),
        *_length_aggs("n_strokes", "strokes"),
    ]
    if with_steps:
        aggs += _length_aggs("length", "steps")
    main, countries = pl.collect_all(
        [
            lf.group_by("word", "split").agg(aggs),
            lf.group_by("word", "split", pl.col("countrycode").fill_null("")).agg(pl.len().alias("n")),
        ]
    )
    top: dict[tuple[str, str], list[list[Any]]] = {}
    # Ties broken by country code so the listing is deterministic.
    for r in countries.sort(["word", "split", "n", "countrycode"], descending=[False, False, True, False]).iter_rows(named=True):
        lst = top.setdefault((r["word"], r["split"]), [])
        if len(lst) < TOP_COUNTRIES:
            lst.append([r["countrycode"], int(r["n"])])
    rows: list[dict[str, Any]] = []
    kinds = ["points", "strokes"] + (["steps"] if with_steps else [])
    for r in main.iter_rows(named=True):
        row: dict[str, Any] = {
            "word": r["word"],
            "split": r["split"],
            "count": int(r["count"]),
            "recognized_share": float(r["recognized_share"]) if r["recognized_share"] is not None else None,
        }
        for k in kinds:
            row[k] = {name: r[f"{k}_{name}"] for name, _ in PERCENTILES} | {"max": r[f"{k}_max"]}
        row["top_countries"] = top.get((r["word"], r["split"]), [])
        rows.append(row)
    return rows


def _sort_rows(rows: list[dict[str, Any]], classes: list[str]) -> list[dict[str, Any]]:
    pos = {w: i for i, w in enumerate(classes)}
    return sorted(rows, key=lambda r: (pos.get(r["word"], len(pos)), r["word"], _SPLIT_ORDER.get(r["split"], 9)))


def _split_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: _SPLIT_ORDER.get(r["split"], 9)):
        out[r["split"]] = out.get(r["split"], 0) + r["count"]
    return out


_FETCH_COLS = ["word", "recognized", "countrycode", "n_points", "n_strokes"]


def _fetch_stats(root: Path) -> dict[str, Any]:
    classes = fetched_classes(root)
    files = [str(p) for w in classes for p in class_parts(root, w)]
    rows = _summarise(pl.scan_parquet(files, glob=False).select(_FETCH_COLS).with_columns(pl.lit("all").alias("split")), False) if files else []
    drops: dict[str, Any] = {}
    for w in classes:
        counts = read_class_manifest(root, w).get("counts", {})
        drops[w] = {"read": counts.get("read"), "filtered": counts.get("filtered", {}), "rejected": counts.get("rejected", {}), "stopped_early": counts.get("stopped_early")}
    return {"kind": "fetch", "classes": classes, "rows": _sort_rows(rows, classes), "drops": drops}


def _prepare_stats(root: Path) -> dict[str, Any]:
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    classes: list[str] = list(manifest.get("classes", []))
    fmts = [f for f in manifest.get("formats", ["stroke3", "stroke5"]) if (root / f).is_dir()]
    if not fmts:
        raise StatsError(f"{root}: prepare manifest found but no stroke3/ or stroke5/ shards")
    fmt = fmts[0]  # every format holds the same rows; stroke-3's `length` is the point count after rules
    frames = []
    for split in sorted((p.name for p in (root / fmt).iterdir() if p.is_dir()), key=lambda s: _SPLIT_ORDER.get(s, 9)):
        files = sorted(str(p) for p in (root / fmt / split).glob("part-*.parquet"))
        if files:
            frames.append(pl.scan_parquet(files, glob=False).select([*_FETCH_COLS, "length"]).with_columns(pl.lit(split).alias("split")))
    rows = _summarise(pl.concat(frames), True) if frames else []
    per_class = manifest.get("counts", {}).get("per_class", {})
    keys = ("read", "duplicates", "too_short", "too_long_dropped", "truncated", "kept")
    drops = {w: {k: per_class.get(w, {}).get(k) for k in keys} for w in classes}
    return {
        "kind": "prepare",
        "format": fmt,
        "classes": classes,
        "params": manifest.get("params"),
        "scale": manifest.get("scale"),
        "input_fingerprint": manifest.get("input_fingerprint"),
        "rows": _sort_rows(rows, classes),
        "drops": drops,
    }


def _cache_stats(cv: Any) -> dict[str, Any]:
    path = Path(cv.path)
    fmt = cv.formats[0]
    classes = list(cv.classes)
    frames = []
    for split in sorted(cv.splits(fmt), key=lambda s: _SPLIT_ORDER.get(s, 9)):
        d = path / fmt / split
        lengths = np.load(d / "lengths.npy", mmap_mode="r")
        meta = pl.scan_parquet(str(d / "meta.parquet"), glob=False).select(_FETCH_COLS).collect()
        frames.append(meta.with_columns(pl.Series("length", np.asarray(lengths)), pl.lit(split).alias("split")).lazy())
    rows = _summarise(pl.concat(frames), True) if frames else []
    prep = cv.manifest.get("params", {}).get("prepare")
    return {
        "kind": "cache",
        "name": cv.name,
        "version": cv.version,
        "format": fmt,
        "classes": classes,
        "params": prep,
        "rows": _sort_rows(rows, classes),
        "drops": {},
    }


def _resolve_cache(name_or_path: str) -> Any | None:
    try:
        from quickdraw.cache import resolve
    except ImportError:  # the cache module is optional for stats
        return None
    return resolve(name_or_path)


def compute_stats(path: str | Path) -> dict[str, Any]:
    """Statistics of a fetch output, a prepare output, or a cache version/name, as a JSON-ready dict.

    Returns ``{"kind", "path", "classes", "total", "splits": {split: n}, "rows": [...], "drops": {...}}``
    where each row is ``{"word", "split", "count", "recognized_share", "points": {p5, p50, p95, max},
    "strokes": {...}, ["steps": {...},] "top_countries": [[code, n], ...]}`` (percentiles interpolate
    linearly; ``steps`` is the sequence length after length rules, stroke-5 counting its end step).
    Fetch output has one split, ``all``. Raises :class:`StatsError` if ``path`` is none of these.
    """
    p = Path(path).expanduser()
    if p.is_dir() and (p / MANIFEST).is_file():
        doc = _prepare_stats(p)
    elif p.is_dir() and fetched_classes(p):
        doc = _fetch_stats(p)
    else:
        try:
            cv = _resolve_cache(str(path))
        except QuickDrawError as exc:
            raise StatsError(f"{path}: not a fetch output (no <class>/_manifest.json), a prepare output (no _manifest.json) or a cache ({exc})") from None
        if cv is None:
            raise StatsError(f"{path}: not a fetch output (no <class>/_manifest.json) or a prepare output (no _manifest.json)")
        doc = _cache_stats(cv)
    doc["path"] = str(p if p.exists() else path)
    doc["splits"] = _split_totals(doc["rows"])
    doc["total"] = sum(doc["splits"].values())
    return doc
