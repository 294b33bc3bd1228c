"""Rendering: a ``Drawing`` that shows itself in Jupyter (PNG and SVG) and ``plot_grid`` for a quick look.

Pen lifts are respected: a stroke ends at a step whose pen-lift flag is set (stroke-3 column 2, stroke-5
column 3) and the next step moves without drawing; stroke-5 stops at its end step.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Drawing", "plot_grid", "strokes_from_sequence"]


def strokes_from_sequence(seq: np.ndarray, format: str = "stroke3") -> list[np.ndarray]:
    """Absolute ``[(N_i, 2) float]`` polylines from a stroke-3 or stroke-5 sequence (deltas)."""
    seq = np.asarray(seq)
    if format == "stroke5" or seq.shape[1] == 5:
        ends = np.flatnonzero(seq[:, 4] > 0)
        if len(ends):
            seq = seq[: ends[0]]
        lift = seq[:, 3] > 0
    else:
        lift = seq[:, 2] > 0
    xy = np.cumsum(seq[:, :2].astype(np.float64), axis=0)
    # Stroke k runs from the step after a lift through the next lift; the first point is the origin move.
    cuts = np.flatnonzero(lift) + 1
    return [s for s in np.split(xy, cuts) if len(s)]


class Drawing:
    """One sequence, drawn. ``_repr_png_``/``_repr_svg_`` make it render inline in notebooks."""

    def __init__(self, sequence: np.ndarray, format: str = "stroke3", word: str | None = None) -> None:
        self.sequence = np.asarray(sequence)
        self.format = format
        self.word = word

    @property
    def strokes(self) -> list[np.ndarray]:
        """Absolute polylines, one per stroke."""
        return strokes_from_sequence(self.sequence, self.format)

    def _fit(self, size: int, margin: float) -> list[np.ndarray]:
        strokes = self.strokes
        if not strokes:
            return []
        allp = np.concatenate(strokes)
        lo, hi = allp.min(axis=0), allp.max(axis=0)
        span = float(max((hi - lo).max(), 1e-9))
        k = (size - 2 * margin) / span
        off = margin + ((size - 2 * margin) - (hi - lo) * k) / 2
        return [(s - lo) * k + off for s in strokes]

    def to_image(self, size: int = 256, line_width: int = 3, upto: int | None = None) -> Any:
        """A PIL image (white background, black strokes).

        ``upto`` draws only the first ``upto`` points in stroke order, framed as the whole drawing (so a
        series of images with growing ``upto`` replays the drawing without jumping).
        """
        from PIL import Image, ImageDraw

        img = Image.new("L", (size, size), 255)
        draw = ImageDraw.Draw(img)
        left = np.inf if upto is None else upto
        for s in self._fit(size, margin=size * 0.06):
            if left <= 0:
                break
            s, left = s[: int(min(left, len(s)))], left - len(s)
            pts = [tuple(p) for p in s.tolist()]
            if len(pts) == 1:
                x, y = pts[0]
                draw.ellipse([x - line_width / 2, y - line_width / 2, x + line_width / 2, y + line_width / 2], fill=0)
            else:
                draw.line(pts, fill=0, width=line_width, joint="curve")
        return img

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.to_image().save(buf, format="PNG")
        return buf.getvalue()

    def _repr_svg_(self, size: int = 256) -> str:
        paths = []
        for s in self._fit(size, margin=size * 0.06):
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in s.tolist())
            paths.append(f'<polyline points="{pts}"/>')
        title = f"<title>{self.word}</title>" if self.word else ""
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
            f'{title}<rect width="100%" height="100%" fill="white"/>'
            f'<g fill="none" stroke="black" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
            + "".join(paths)
            + "</g></svg>"
        )

    def __repr__(self) -> str:
        return f"Drawing({self.word!r}, {len(self.sequence)} steps, {len(self.strokes)} strokes)"


def plot_grid(ds: Any, per_class: int = 8, classes: list[str] | None = None) -> Figure:
    """A matplotlib Figure with one row per class and ``per_class`` drawings in each (Agg, no display).

    ``ds`` is a :class:`~quickdraw.datasets.SequenceDataset`; ``classes`` picks and orders the rows
    (default: every class).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(classes) if classes is not None else list(ds.classes)
    unknown = [c for c in names if c not in ds.classes]
    if unknown:
        raise ValueError(f"unknown class(es) {unknown} (have: {', '.join(ds.classes)})")
    labels = np.asarray(ds.labels)
    fig = Figure(figsize=(per_class * 1.2, max(1, len(names)) * 1.2), dpi=80)
    FigureCanvasAgg(fig)  # Agg canvas: works headless and never touches pyplot's global state
    axes = fig.subplots(max(1, len(names)), per_class, squeeze=False)
    for r, name in enumerate(names):
        picks = np.flatnonzero(labels == ds.classes.index(name))[:per_class]
        for c in range(per_class):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
            if c >= len(picks):
                continue
            for s in ds.drawing(int(picks[c])).strokes:
                ax.plot(s[:, 0], -s[:, 1], color="black", linewidth=1)
            ax.set_aspect("equal", adjustable="datalim")
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.12, right=0.99, top=0.99, bottom=0.01)
    return fig
