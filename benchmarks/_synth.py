"""Synthetic Quick, Draw! *simplified* ndjson that looks like the real files, generated fast (numpy).

Every line has the exact byte shape of the public files (no spaces, same key order)::

    {"word":"cat","countrycode":"BR","timestamp":"2017-03-01 12:00:00.12345 UTC","recognized":true,"key_id":"5000000000000001","drawing":[[[x,...],[y,...]],...]}

and the distributions are fitted to summary statistics of real simplified drawings (no real data is copied):

* strokes per drawing: 1 + negative binomial, mean ~5.7, median 5, p90 ~10 (real: 5.7 / 5 / 11);
* points per stroke: 1 + negative binomial, mean ~8.4, median ~6 (real: 8.4 / 6), so ~47 points a drawing;
* coordinates: a random walk per stroke with Laplace steps (mean |step| ~16, as after RDP simplification),
  reflected into 0..255, so digit counts (and hence bytes) match: ~500 bytes a line on average;
* timestamps in Jan-Apr 2017 with the 10-microsecond fractions of the real files ("54.78083", trailing
  zeros dropped), 16-digit key ids, ~91% ``recognized``, country codes skewed towards US.

Generation is vectorised: a drawing is a sequence of *tokens* (a coordinate's digits, ``,``, ``],[``, the
per-drawing header...) and the output bytes are one gather from a token table, batch by batch, so 100 MB
takes a couple of seconds. ``write_class_file`` caches: an existing file of the right size is reused.

    python benchmarks/_synth.py OUT.ndjson --mb 100 [--word cat] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

__all__ = ["synth_bytes", "write_class_file"]

# Country codes and rough weights (a long tail folded into a handful of codes: only the bytes matter).
_COUNTRIES = ["US", "GB", "CA", "DE", "RU", "AU", "SE", "BR", "CZ", "FI", "FR", "PL", "IT", "IN", "KR", "JP", "NL"]
_CC_WEIGHTS = np.array([44, 7, 4, 3, 2.5, 2.4, 1.9, 1.9, 1.7, 1.7, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0])
_CC_WEIGHTS = _CC_WEIGHTS / _CC_WEIGHTS.sum()

_T0 = np.datetime64("2017-01-01T00:00:00", "s")
_T_SPAN = int((np.datetime64("2017-04-05T00:00:00", "s") - _T0).astype(np.int64))

# Token ids: 0..255 are the coordinates' decimal digits; then separators; then one header per drawing.
_COMMA, _MID, _OPEN, _NEXT, _LAST = 256, 257, 258, 259, 260
_STATIC = [str(v).encode() for v in range(256)] + [b",", b"],[", b"[[", b"]],", b"]]]}\n"]
_HEADER_BASE = len(_STATIC)


def _headers(rng: np.random.Generator, n: int, word: str, first_key: int) -> list[bytes]:
    secs = _T0 + rng.integers(0, _T_SPAN, n).astype("timedelta64[s]")
    stamps = np.char.replace(np.datetime_as_string(secs, unit="s"), "T", " ").tolist()
    frac = rng.integers(1, 100000, n).tolist()  # 10-microsecond resolution, as in the real files
    cc = np.array(_COUNTRIES)[rng.choice(len(_COUNTRIES), n, p=_CC_WEIGHTS)].tolist()
    rec = np.where(rng.random(n) < 0.915, "true", "false").tolist()
    # 16-digit key ids (4.5e15..5.6e15 as in the real files): a random high part and a running counter.
    keys = (4503599627370496 + rng.integers(0, 2**50, n) // 2**20 * 2**20 + first_key + np.arange(n)).tolist()
    w = word.replace("\\", "\\\\").replace('"', '\\"')
    return [
        f'{{"word":"{w}","countrycode":"{c}","timestamp":"{s}.{f:05d}'.rstrip("0").encode()
        + f' UTC","recognized":{r},"key_id":"{k}","drawing":['.encode()
        for c, s, f, r, k in zip(cc, stamps, frac, rec, keys)
    ]


def _batch(rng: np.random.Generator, n: int, word: str, first_key: int) -> bytes:
    n_strokes = 1 + rng.negative_binomial(2, 2 / (2 + 4.7), n)
    s = int(n_strokes.sum())
    k = (1 + rng.negative_binomial(1.3, 1.3 / (1.3 + 7.4), s)).astype(np.int64)  # points per stroke
    p = int(k.sum())
    stroke_of_point = np.repeat(np.arange(s), k)
    first_point = np.concatenate(([0], np.cumsum(k)[:-1]))
    t = np.arange(p) - first_point[stroke_of_point]  # index of each point within its stroke

    def walk() -> np.ndarray:
        steps = np.rint(rng.laplace(0.0, 16.0, p))
        steps[first_point] = 0
        pos = np.cumsum(steps)
        pos += (rng.integers(0, 256, s) - pos[first_point])[stroke_of_point]
        v = np.mod(pos, 510)
        return np.where(v > 255, 510 - v, v).astype(np.int64)  # reflect into 0..255

    x, y = walk(), walk()

    # Token layout: per drawing, HEADER then each stroke as  [[ x0 , x1 ... x_k-1 ],[ y0 , ... y_k-1 END
    # with END = "]]," between strokes and "]]]}\n" after the last: 4k+1 tokens a stroke.
    drawing_of_stroke = np.repeat(np.arange(n), n_strokes)
    per_stroke = 4 * k + 1
    before = np.concatenate(([0], np.cumsum(per_stroke)[:-1]))
    s_off = before + drawing_of_stroke + 1  # one header token per drawing so far, its own included
    last_stroke = np.cumsum(n_strokes) - 1
    d_off = s_off[last_stroke - n_strokes + 1] - 1
    tok = np.full(int(per_stroke.sum()) + n, _COMMA, np.int32)
    tok[d_off] = _HEADER_BASE + np.arange(n)
    tok[s_off] = _OPEN
    base = s_off[stroke_of_point] + 1 + 2 * t
    tok[base] = x
    tok[base + 2 * k[stroke_of_point]] = y
    tok[s_off + 2 * k] = _MID
    tok[s_off + 4 * k] = _NEXT
    tok[s_off[last_stroke] + 4 * k[last_stroke]] = _LAST

    pieces = _STATIC + _headers(rng, n, word, first_key)
    lens = np.fromiter((len(b) for b in pieces), np.int32, len(pieces))
    starts = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int32)
    table = np.frombuffer(b"".join(pieces), np.uint8)
    out_len = lens[tok]
    out_start = np.concatenate(([0], np.cumsum(out_len)[:-1])).astype(np.int32)  # a batch is << 2 GB
    idx = np.repeat(starts[tok] - out_start, out_len)
    idx += np.arange(len(idx), dtype=np.int32)
    return table[idx].tobytes()


def synth_bytes(n_drawings: int, word: str = "cat", seed: int = 0, batch: int = 20_000) -> bytes:
    """``n_drawings`` lines of synthetic simplified ndjson for ``word`` (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    return b"".join(_batch(rng, min(batch, n_drawings - i), word, i) for i in range(0, n_drawings, batch))


def write_class_file(path: str | os.PathLike[str], mb: float, word: str = "cat", seed: int = 0,
                     batch: int = 20_000) -> tuple[int, int, float]:
    """Write at least ``mb`` MB (10^6 bytes) of whole lines to ``path``; return ``(bytes, drawings, seconds)``.

    Cached: if ``path`` exists with a ``.meta`` sidecar for the same arguments, it is reused (seconds = 0).
    """
    path = Path(path)
    meta = path.with_name(path.name + ".meta")
    key = f"{mb} {word} {seed} {batch}"
    if path.exists() and meta.exists():
        got = meta.read_text().split("\n")
        if got[0] == key and int(got[1]) == path.stat().st_size:
            return int(got[1]), int(got[2]), 0.0
    t0 = time.perf_counter()
    target = int(mb * 1e6)
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".incomplete")
    size = drawings = 0
    with open(tmp, "wb") as f:
        while size < target:
            # ~500 bytes a drawing: size the last batch so the file ends just past the target.
            n = max(1, min(batch, (target - size) // 515 + 1))
            data = _batch(rng, n, word, drawings)
            f.write(data)
            size += len(data)
            drawings += n
    os.replace(tmp, path)
    meta.write_text(f"{key}\n{size}\n{drawings}\n")
    return size, drawings, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--word", default="cat")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    size, n, secs = write_class_file(a.out, a.mb, a.word, a.seed)
    print(f"{a.out}: {size / 1e6:.1f} MB, {n} drawings, {size / n:.0f} B/drawing, {secs:.2f} s")


if __name__ == "__main__":
    main()
