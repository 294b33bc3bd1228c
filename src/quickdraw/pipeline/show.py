"""See the data: a grid of drawings per class (PNG or SVG) and a GIF replaying them in stroke order.

:func:`load_sample` reads the first ``n`` drawings of each class from any stage's output

* a **fetch** output directory (docs/FORMATS.md section 1; the simplified schema or the raw variant),
* a **prepare** output directory (section 2; the ``stroke3`` shards of one split, else ``stroke5``),
* a **cache** name, name directory or version directory (section 3, through :func:`quickdraw.load`),

as stroke-3 sequences, and :func:`show` draws them with the shared renderer
(:func:`quickdraw.datasets.plot_grid` for the grid, :meth:`Drawing.to_image` for the animation frames), so
pen lifts are respected everywhere the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quickdraw.datasets.render import Drawing, plot_grid
from quickdraw._ownership import output_file
from quickdraw.errors import QuickDrawError

__all__ = ["Sample", "ShowError", "animate", "load_sample", "render_grid", "show"]

log = logging.getLogger(__name__)

GRID_FORMATS = (".png", ".svg")


class ShowError(QuickDrawError):
    """Nothing to show: an unknown path or name, unknown classes, or an unsupported output type."""


@dataclass
class Sample:
    """A few drawings per class as stroke-3 ``[L, 3]`` arrays (int16, or float32 for raw coordinates).

    Has what :func:`~quickdraw.datasets.plot_grid` needs from a dataset: ``classes``, ``labels``, ``drawing(i)``.
    """

    kind: str
    classes: list[str]
    sequences: list[np.ndarray] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.sequences)

    def drawing(self, i: int) -> Drawing:
        return Drawing(self.sequences[i], "stroke3", self.classes[int(self.labels[i])])


def _stroke3_from_arrow(drawing: dict[str, Any]) -> np.ndarray:
    """Stroke-3 (float32, so raw float coordinates survive) from one Arrow ``drawing`` value."""
    x = np.asarray(drawing["x"], np.float64)
    y = np.asarray(drawing["y"], np.float64)
    lens = np.asarray(drawing["stroke_len"], np.int64)
    out = np.zeros((len(x), 3), np.float32)
    if not len(x):
        return out
    out[:, 0] = np.diff(x, prepend=0.0)
    out[:, 1] = np.diff(y, prepend=0.0)
    out[np.cumsum(lens[lens > 0]) - 1, 2] = 1
    return out


def _pick_classes(have: Sequence[str], classes: Sequence[str] | None, where: str) -> list[str]:
    if classes is None:
        return list(have)
    missing = [c for c in classes if c not in have]
    if missing:
        raise ShowError(f"class(es) {', '.join(missing)} not in {where} (have: {', '.join(have) or 'none'})")
    return list(classes)


def _from_fetch(root: Path, classes: Sequence[str] | None, n: int) -> Sample:
    import pyarrow.parquet as pq

    from quickdraw.sources.parquet import check_schema_version, class_parts, fetched_classes

    words = _pick_classes(fetched_classes(root), classes, str(root))
    sample = Sample("fetch", words)
    labels: list[int] = []
    for w in words:
        check_schema_version(root, w)
    for label, w in enumerate(words):
        got = 0
        for part in class_parts(root, w):
            if got >= n:
                break
            pf = pq.ParquetFile(part)
            for batch in pf.iter_batches(batch_size=max(n, 64), columns=["drawing"]):
                for d in batch.column(0).slice(0, n - got).to_pylist():
                    sample.sequences.append(_stroke3_from_arrow(d))
                    labels.append(label)
                    got += 1
                if got >= n:
                    break
    sample.labels = np.asarray(labels, np.int32)
    return sample


def _from_prepare(root: Path, classes: Sequence[str] | None, n: int, split: str) -> Sample:
    import json

    import polars as pl

    manifest = json.loads((root / "_manifest.json").read_text(encoding="utf-8"))
    fmt = next((f for f in ("stroke3", "stroke5") if (root / f / split).is_dir()), None)
    if fmt is None:
        raise ShowError(f"{root}: no stroke3/{split} or stroke5/{split} shards")
    have = list(manifest.get("classes", []))
    words = _pick_classes(have, classes, str(root))
    files = sorted(str(p) for p in (root / fmt / split).glob("part-*.parquet"))
    sample = Sample("prepare", words)
    if not files:
        return sample
    df = (
        pl.scan_parquet(files, glob=False)
        .select("word", "sequence")
        .filter(pl.col("word").is_in(words))
        .group_by("word", maintain_order=True)
        .head(n)
        .collect()
    )
    pos = {w: i for i, w in enumerate(words)}
    labels: list[int] = []
    for word, seq in df.iter_rows():
        arr = np.asarray(seq, np.int16).reshape(-1, 3 if fmt == "stroke3" else 5)
        if fmt == "stroke5":
            from quickdraw.strokes import stroke5_to_stroke3

            arr = stroke5_to_stroke3(arr)
        sample.sequences.append(arr)
        labels.append(pos[word])
    order = np.argsort(np.asarray(labels, np.int64), kind="stable")
    sample.sequences = [sample.sequences[i] for i in order]
    sample.labels = np.asarray(labels, np.int32)[order]
    return sample


def _from_cache(name: str, classes: Sequence[str] | None, n: int, split: str, version: str,
                root: str | os.PathLike[str] | None) -> Sample:
    from quickdraw.datasets import load

    ds = load(name, split=split, format="stroke3", version=version, root=root)
    words = _pick_classes(ds.classes, classes, f"cache {ds.cache.name}/{ds.cache.version}")
    all_labels = np.asarray(ds.labels)
    sample = Sample("cache", words)
    labels: list[int] = []
    for label, w in enumerate(words):
        for i in np.flatnonzero(all_labels == ds.classes.index(w))[:n].tolist():
            sample.sequences.append(np.array(ds[i][0]))
            labels.append(label)
    sample.labels = np.asarray(labels, np.int32)
    return sample


def load_sample(
    path_or_name: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    n: int = 16,
    split: str = "train",
    version: str = "latest",
    root: str | os.PathLike[str] | None = None,
) -> Sample:
    """The first ``n`` drawings of each class (all classes, or ``classes`` in that order) of a fetch output,
    a prepare output (``split``) or a cache (``split``, ``version``, ``root``).

    Raises :class:`ShowError` if the path is none of these or a class is not in it.
    """
    from quickdraw.sources.parquet import fetched_classes

    if n < 1:
        raise ShowError(f"n must be at least 1, got {n}")
    if split not in ("train", "val", "test"):
        # Checked first: a fetch output has no splits, and a bad name must not pass silently there.
        raise ShowError(f"unknown split {split!r}: expected train, val or test")
    p = Path(path_or_name).expanduser()
    if p.is_dir() and (p / "_manifest.json").is_file():
        return _from_prepare(p, classes, n, split)
    if p.is_dir() and fetched_classes(p):
        return _from_fetch(p, classes, n)
    try:
        return _from_cache(os.fspath(path_or_name), classes, n, split, version, root)
    except ShowError:
        raise
    except QuickDrawError as exc:
        raise ShowError(
            f"{path_or_name}: not a fetch output (no <class>/_manifest.json), a prepare output (no _manifest.json) "
            f"or a cache ({exc})"
        ) from None


def render_grid(sample: Sample, out: str | os.PathLike[str], n: int) -> Path:
    """Write one row per class, ``n`` drawings each, as PNG or SVG (by ``out``'s suffix); returns the path.

    The figure is ``n * 96`` by ``rows * 96`` pixels in PNG (1.2 in per drawing at 80 dpi).
    """
    out = Path(out)
    if out.suffix.lower() not in GRID_FORMATS:
        raise ShowError(f"{out}: the grid is written as .png or .svg")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_grid(sample, per_class=n, classes=sample.classes)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.incomplete")  # a name no user file has
    fig.savefig(tmp, format=out.suffix.lower()[1:], dpi=fig.dpi)
    os.replace(tmp, out)
    return out


def animate(sample: Sample, out: str | os.PathLike[str], n: int, *, tile: int = 96, frames: int = 40,
            frame_ms: int = 80, hold_ms: int = 1500) -> Path:
    """Write a GIF replaying every drawing of the grid in stroke order (all finish on the last frame).

    Frame k shows the first ``ceil(L * k / frames)`` points of each drawing of L points; the last frame
    is held ``hold_ms``. Rows are classes, columns the ``n`` drawings; each tile is ``tile`` pixels.
    """
    from PIL import Image

    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise ShowError(f"{out}: the animation is written as .gif")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = max(1, len(sample.classes))
    drawings = [sample.drawing(i) for i in range(len(sample))]
    lengths = np.array([len(d.sequence) for d in drawings], np.int64)
    slot: list[tuple[int, int]] = []
    col_of: dict[int, int] = {}
    for lab in sample.labels.tolist():
        c = col_of.get(lab, 0)
        col_of[lab] = c + 1
        slot.append((lab, c))
    n_frames = max(1, min(frames, int(lengths.max()) if len(lengths) else 1))
    images = []
    for k in range(1, n_frames + 1):
        canvas = Image.new("L", (n * tile, rows * tile), 255)
        for d, (r, c), length in zip(drawings, slot, lengths.tolist()):
            if c >= n:
                continue
            upto = -(-length * k // n_frames)
            canvas.paste(d.to_image(size=tile, line_width=2, upto=upto), (c * tile, r * tile))
        images.append(canvas)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.incomplete")  # a name no user file has
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=[frame_ms] * (len(images) - 1) + [hold_ms])
    os.replace(tmp, out)
    return out


def show(
    path_or_name: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    animate_to: str | os.PathLike[str] | None = None,
    classes: Sequence[str] | None = None,
    n: int = 16,
    split: str = "train",
    version: str = "latest",
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Load a sample (see :func:`load_sample`) and write the grid to ``out`` and/or the GIF to ``animate_to``.

    An existing file at either is replaced only with ``overwrite``.

    Returns ``{"kind", "classes", "drawings": {class: n}, "out", "animation"}``.

    >>> show("animals10", "grid.png", classes=["cat"], n=8)  # doctest: +SKIP
    """
    if out is None and animate_to is None:
        raise ShowError("nothing to write: give an output file (.png/.svg) and/or an animation (.gif)")
    for target, ok in ((out, GRID_FORMATS), (animate_to, (".gif",))):
        if target is not None and Path(target).suffix.lower() not in ok:
            raise ShowError(f"{target}: expected {' or '.join(ok)}")
    for target in (out, animate_to):
        if target is not None:
            output_file(target, overwrite=overwrite)  # refuse before any work
    sample = load_sample(path_or_name, classes, n, split, version, root)
    if not len(sample):
        raise ShowError(f"{path_or_name}: no drawings to show for {', '.join(sample.classes) or 'any class'}")
    counts = {w: int((sample.labels == i).sum()) for i, w in enumerate(sample.classes)}
    grid = render_grid(sample, out, n) if out is not None else None
    gif = animate(sample, animate_to, n) if animate_to is not None else None
    return {"kind": sample.kind, "classes": sample.classes, "drawings": counts,
            "out": str(grid) if grid else None, "animation": str(gif) if gif else None}
