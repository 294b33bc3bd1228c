"""A compiled, anti-aliased rasterizer for the ``numpy_bitmap`` layout (imported lazily: numba).

Each stroke is drawn as round-capped segments of ``line_width`` px (capsules) in the 256 x 256 frame of the
simplified drawings (pixel centres at the integer coordinates 0..255, so the canvas spans -0.5..255.5). A
bitmap pixel covers ``256 / size`` frame px on a side; its value is the share of its ``ss x ss`` sub-samples
(evenly spaced, at sub-pixel centres) that fall inside some capsule, times 255, rounded half to even: box
filtered supersampling, strokes 255 on a 0 background (as MNIST and Google's ``numpy_bitmap`` files).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["rasterize"]

_SIG = numba.types.void(
    numba.types.Array(numba.types.int64, 1, "C", readonly=True),  # x (all points)
    numba.types.Array(numba.types.int64, 1, "C", readonly=True),  # y
    numba.types.Array(numba.types.int64, 1, "C", readonly=True),  # stroke_pts
    numba.types.Array(numba.types.int64, 1, "C", readonly=True),  # strokes per drawing
    numba.types.int64,  # size
    numba.types.float64,  # line width (frame px)
    numba.types.int64,  # ss: sub-samples per bitmap pixel and axis
    numba.types.Array(numba.types.uint8, 3, "C"),  # out [n, size, size]
)


@numba.njit([_SIG], cache=True, nogil=True)
def rasterize(x, y, stroke_pts, n_strokes, size, line_width, ss, out):  # type: ignore[no-untyped-def]
    """Render every drawing into ``out[d]`` (module docstring)."""
    hi = size * ss
    step = 256.0 / hi  # frame px per sub-sample
    r = line_width / 2.0
    r2 = r * r
    mask = np.zeros((hi, hi), np.bool_)
    p = 0
    s = 0
    for d in range(n_strokes.shape[0]):
        mask[:, :] = False
        for k in range(s, s + n_strokes[d]):
            m = stroke_pts[k]
            for i in range(max(m - 1, 1) if m > 0 else 0):
                ax = float(x[p + i])
                ay = float(y[p + i])
                j = p + i + 1 if m > 1 else p + i
                bx = float(x[j])
                by = float(y[j])
                vx = bx - ax
                vy = by - ay
                l2 = vx * vx + vy * vy
                # sub-samples whose centre can be within r of the segment
                u0 = max(0, int(np.floor((min(ax, bx) - r + 0.5) / step - 0.5)))
                u1 = min(hi - 1, int(np.ceil((max(ax, bx) + r + 0.5) / step - 0.5)))
                v0 = max(0, int(np.floor((min(ay, by) - r + 0.5) / step - 0.5)))
                v1 = min(hi - 1, int(np.ceil((max(ay, by) + r + 0.5) / step - 0.5)))
                for v in range(v0, v1 + 1):
                    cy = (v + 0.5) * step - 0.5
                    for u in range(u0, u1 + 1):
                        if mask[v, u]:
                            continue
                        cx = (u + 0.5) * step - 0.5
                        wx = cx - ax
                        wy = cy - ay
                        t = 0.0
                        if l2 > 0.0:
                            t = (wx * vx + wy * vy) / l2
                            t = min(1.0, max(0.0, t))
                        dx = wx - t * vx
                        dy = wy - t * vy
                        if dx * dx + dy * dy <= r2:
                            mask[v, u] = True
            p += m
        s += n_strokes[d]
        full = ss * ss
        for i in range(size):
            for j in range(size):
                c = 0
                for v in range(i * ss, (i + 1) * ss):
                    for u in range(j * ss, (j + 1) * ss):
                        c += mask[v, u]
                out[d, i, j] = np.uint8(np.rint(255.0 * c / full))
