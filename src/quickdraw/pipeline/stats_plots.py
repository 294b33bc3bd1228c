"""Histograms of points and strokes per drawing, per class, for ``quickdraw stats --plots DIR``.

Reads the same three inputs as :func:`quickdraw.pipeline.stats.compute_stats` (fetch output, prepare output,
cache) but only the ``word``, ``n_points`` and ``n_strokes`` columns, and writes two PNG files:
``points_per_class.png`` and ``strokes_per_class.png`` (one small histogram per class, shared bins).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl

from quickdraw.sources.parquet import MANIFEST, class_parts, fetched_classes

__all__ = ["PLOT_FILES", "length_frame", "write_length_plots"]

PLOT_FILES = {"n_points": "points_per_class.png", "n_strokes": "strokes_per_class.png"}
_COLS = ["word", "n_points", "n_strokes"]


def length_frame(path: str | os.PathLike[str]) -> tuple[list[str], pl.DataFrame]:
    """``(classes, frame of word, n_points, n_strokes)`` of every drawing (all splits) of a stats input."""
    from quickdraw.pipeline.stats import StatsError, _resolve_cache

    p = Path(path).expanduser()
    if p.is_dir() and (p / MANIFEST).is_file():
        classes = list(json.loads((p / MANIFEST).read_text(encoding="utf-8")).get("classes", []))
        fmt = next((f for f in ("stroke3", "stroke5") if (p / f).is_dir()), None)
        files = sorted(str(f) for f in (p / fmt).glob("*/part-*.parquet")) if fmt else []
    elif p.is_dir() and fetched_classes(p):
        classes = fetched_classes(p)
        files = [str(f) for w in classes for f in class_parts(p, w)]
    else:
        cv = _resolve_cache(str(path))
        if cv is None:
            raise StatsError(f"{path}: not a fetch output, a prepare output or a cache")
        classes = list(cv.classes)
        fmt = cv.formats[0]
        files = [str(Path(cv.path) / fmt / s / "meta.parquet") for s in cv.splits(fmt)]
    df = pl.scan_parquet(files, glob=False).select(_COLS).collect() if files else pl.DataFrame(schema={c: pl.Int64 if c != "word" else pl.String for c in _COLS})
    return classes, df


def write_length_plots(path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the points and strokes histograms (one panel per class) into ``out_dir``; returns the files."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes, df = length_frame(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    cols = min(5, max(1, len(classes)))
    rows = max(1, -(-len(classes) // cols))
    for col, name in PLOT_FILES.items():
        values = df[col].to_numpy() if df.height else np.zeros(0)
        hi = float(np.percentile(values, 99.5)) if len(values) else 1.0
        bins = np.linspace(0, max(hi, 1.0), 31)
        fig = Figure(figsize=(3 * cols, 2.2 * rows), dpi=80)
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k >= len(classes):
                ax.set_visible(False)
                continue
            v = df.filter(pl.col("word") == classes[k])[col].to_numpy()
            ax.hist(np.minimum(v, bins[-1]), bins=bins, color="#4c72b0")
            ax.set_title(f"{classes[k]} (n={len(v)}, median {np.median(v) if len(v) else 0:.0f})", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.suptitle(f"{col.replace('n_', '')} per drawing (last bin: >= p99.5)", fontsize=10)
        fig.tight_layout()
        target = out / name
        tmp = target.with_name(target.name + ".incomplete")
        fig.savefig(tmp, format="png")
        os.replace(tmp, target)
        written.append(target)
    return written
