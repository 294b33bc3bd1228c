"""Source formats: binary vs ndjson read throughput on the same synthetic drawings, in one run.

The same N drawings (``quickdraw.sources.synthetic``: shaped like the public simplified files) are encoded
as simplified ndjson and as the published binary layout (``quickdraw.sources.binary.write_binary``), then
read into the fetch Arrow table in 4 MB chunks, as ``quickdraw fetch`` reads them:

  ndjson  ``parse_chunk`` (compiled scanner)         baseline: ``json.loads`` per line
  binary  ``parse_binary_chunk`` (compiled kernel)   baseline: the README's ``struct.unpack`` reader

plus ``fetch()`` end to end from a local folder (read + parse + Parquet + manifest), and the raw path
(orjson + the published simplification) on the shared raw files when present.

    python benchmarks/bench_formats.py [--n 100000] [--repeat 3]

Measured on the 2-core development machine (100,000 drawings, best of 3):

| reader                                   |   MB |     s |  drawings/s |
|------------------------------------------|------|-------|-------------|
| ndjson: parse_chunk (scanner)            | 82.2 | 0.270 |     371,048 |
| ndjson baseline: json.loads loop         | 82.2 | 1.512 |      66,139 |
| binary: parse_binary_chunk (kernel)      | 21.0 | 0.035 |   2,893,944 |
| binary baseline: struct.unpack loop      | 21.0 | 0.332 |     301,174 |
| ndjson: fetch() end to end (+Parquet)    | 82.2 | 0.753 |     132,851 |
| binary: fetch() end to end (+Parquet)    | 21.0 | 0.488 |     205,036 |

binary / ndjson: 7.8x parsing, 1.5x end to end (Parquet writing dominates), files 0.25x the size.
raw: 13,138 drawings/s with timing, 6,860 drawings/s simplified (4,855 real drawings).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import tempfile
import time
from pathlib import Path

from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.sources.binary import parse_binary_chunk, write_binary
from quickdraw.sources.ndjson import parse_chunk
from quickdraw.sources.synthetic import synthetic_records, to_ndjson

DATA = Path(os.environ.get("QUICKDRAW_SHARED_DATA", "/work/shared/data/quickdraw_dataset"))
CHUNK = 4 << 20


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def read_ndjson(data: bytes) -> int:
    n, off, line = 0, 0, 1
    while off < len(data):
        chunk = data[off : off + CHUNK]
        at_eof = off + len(chunk) == len(data)
        cut = len(chunk) if at_eof else chunk.rfind(b"\n") + 1
        res = parse_chunk(chunk[:cut], line, word="cat", at_eof=at_eof)
        n += res.table.num_rows
        off += cut
        line += res.n_lines
    return n


def read_binary(data: bytes) -> int:
    n, off, rec = 0, 0, 1
    while off < len(data):
        chunk = data[off : off + CHUNK]
        res, used = parse_binary_chunk(chunk, rec, word="cat", at_eof=off + len(chunk) == len(data))
        n += res.table.num_rows
        off += used
        rec += res.n_lines
    return n


def json_loop(data: bytes) -> int:
    return sum(1 for line in data.splitlines() if json.loads(line)["drawing"])


def struct_loop(data: bytes) -> int:
    # The reader the Quick, Draw! README shows, one struct.unpack per field.
    n, off = 0, 0
    while off < len(data):
        _key, = struct.unpack_from("<Q", data, off)
        off += 8
        off += 2 + 1 + 4
        n_strokes, = struct.unpack_from("<H", data, off)
        off += 2
        for _ in range(n_strokes):
            n_points, = struct.unpack_from("<H", data, off)
            off += 2
            struct.unpack_from(f"{n_points}B", data, off)
            struct.unpack_from(f"{n_points}B", data, off + n_points)
            off += 2 * n_points
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    recs = synthetic_records(args.n, word="cat", seed=0)
    nd = to_ndjson(recs)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "nd").mkdir()
        (t / "bin").mkdir()
        (t / "nd" / "cat.ndjson").write_bytes(nd)
        write_binary(recs, t / "bin" / "cat.bin")
        bn = (t / "bin" / "cat.bin").read_bytes()
        del recs
        read_ndjson(nd[:100_000]), read_binary(bn[:100_000])  # compile / warm up
        assert read_ndjson(nd) == read_binary(bn) == args.n
        rows = []
        for name, fn, data in (
            ("ndjson: parse_chunk (scanner)", read_ndjson, nd),
            ("ndjson baseline: json.loads loop", json_loop, nd),
            ("binary: parse_binary_chunk (kernel)", read_binary, bn),
            ("binary baseline: struct.unpack loop", struct_loop, bn),
        ):
            rows.append((name, len(data), best(lambda: fn(data), args.repeat)))  # noqa: B023
        for fmt, folder in (("ndjson", "nd"), ("binary", "bin")):
            def run(fmt: str = fmt, folder: str = folder) -> None:
                out = Path(tempfile.mkdtemp(dir=tmp))
                fetch("cat", out, FetchOptions(source=str(t / folder), format=fmt))
            rows.append((f"{fmt}: fetch() end to end (+Parquet)", len(nd if fmt == "ndjson" else bn), best(run, args.repeat)))
    print(f"\n{args.n:,} synthetic drawings, best of {args.repeat}, 4 MB chunks\n")
    print(f"| {'reader':<40} | {'MB':>7} | {'s':>7} | {'drawings/s':>12} |")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 9}|{'-' * 14}|")
    for name, size, s in rows:
        print(f"| {name:<40} | {size / 1e6:7.1f} | {s:7.3f} | {args.n / s:12,.0f} |")
    r = {name: args.n / s for name, _, s in rows}
    print(f"\nbinary / ndjson (parse): {r['binary: parse_binary_chunk (kernel)'] / r['ndjson: parse_chunk (scanner)']:.2f}x;"
          f" end to end: {r['binary: fetch() end to end (+Parquet)'] / r['ndjson: fetch() end to end (+Parquet)']:.2f}x;"
          f" file size binary / ndjson: {len(bn) / len(nd):.2f}")
    raw_dir = DATA / "full" / "raw"
    if raw_dir.is_dir():
        from quickdraw.sources.raw import parse_raw_chunk

        files = sorted(raw_dir.glob("*.ndjson"))
        blobs = [(f.stem, f.read_bytes()) for f in files]
        total = sum(blob.count(b"\n") for _, blob in blobs)
        for simplify in (False, True):
            s = best(lambda: [parse_raw_chunk(b, 1, word=w, at_eof=True, simplify=simplify) for w, b in blobs], 1)  # noqa: B023
            print(f"raw ({'simplified' if simplify else 'with timing'}): {total:,} real drawings in {s:.2f} s = {total / s:,.0f} drawings/s")


if __name__ == "__main__":
    main()
