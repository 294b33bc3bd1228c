"""Prepare, cache build, cache open / random access and stats on synthetic data (issue 3).

Scenarios (each run in a fresh Python subprocess; imports happen before the timer starts):

a. ``quickdraw.pipeline.prepare.prepare`` (stroke-3 + stroke-5, default rules: min_len 6, max_len 250,
   truncate, 0.8/0.1/0.1) on a synthetic fetch output, beside a naive notebook baseline: read the Parquet,
   ``to_pylist()`` the drawings, a Python loop per drawing building stroke-3 and stroke-5 numpy arrays (same
   length rules), ``.tolist()`` them into one ``pyarrow.table`` per format and write it;
b. ``quickdraw.cache.build_cache`` (both formats) on ``--n`` prepare-format sequences
   (``quickdraw.cache.synthetic.write_synthetic_strokes``), into a fresh root each run;
c. ``quickdraw.load(name, split="train", root=...)`` in a fresh process: the first call *including* the lazy
   imports it triggers (numpy, quickdraw.datasets, ...), and the same call with those modules already
   imported (the target); then ``ds[i]`` over 1M random ``i`` (a Python loop; per-call time);
d. ``quickdraw.pipeline.stats.compute_stats`` on the ``--n`` cache, the ``--n`` prepare output, and the fetch
   output of (a).

The fetch-format input is written directly in ``DRAWING_SCHEMA`` (schema 2, src/quickdraw/sources/schema.py;
the column built by ``drawing_array``) by a vectorised generator using ``_synth.py``'s distributions (~5.7
strokes, ~47 points a drawing; coordinates as reflected random walks), encoded like fetch's parts
(byte-stream-split coordinates, zstd), one part and a fetch-like ``_manifest.json`` per class. Every input was
just written, so it is read from the page cache: CPU numbers, not disk numbers.

    python benchmarks/bench_prepare_cache.py [--n 1000000] [--prepare-n N] [--baseline-n 20000] [--repeat 3]
                                             [--keep DIR] [--json FILE]

Targets: ``load`` < 50 ms (modules imported), ``ds[i]`` < 10 us, ``compute_stats`` on ``--n`` drawings < 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:  # run as a script this is already so; imported from elsewhere it is not
    sys.path.insert(0, str(HERE))
from _common import MB, parse_args_or_run_child, print_checks, table, work_dir
from _common import best_of as _best_of
from _common import peak_rss_mb as _peak_rss_mb
from _common import run_child as _run_child

CLASSES = ["cat", "dog", "apple", "banana", "bicycle", "car", "fish", "house", "tree", "snake"]

TARGET_OPEN_S = 0.050
TARGET_ACCESS_S = 10e-6
TARGET_STATS_S = 1.0


# ------------------------------------------------------------------------------------------------ inputs


def _walk(rng: Any, first_point: Any, stroke_of_point: Any, p: int) -> Any:
    import numpy as np

    steps = np.rint(rng.laplace(0.0, 16.0, p))
    steps[first_point] = 0
    pos = np.cumsum(steps)
    pos += (rng.integers(0, 256, len(first_point)) - pos[first_point])[stroke_of_point]
    v = np.mod(pos, 510)
    return np.where(v > 255, 510 - v, v).astype(np.uint8)  # reflected into 0..255


def _drawing_table(rng: Any, word: str, key_ids: Any) -> Any:
    """``len(key_ids)`` synthetic drawings of ``word`` as a ``DRAWING_SCHEMA`` table (no Python loop)."""
    import numpy as np
    import pyarrow as pa

    from quickdraw.sources.schema import DRAWING_SCHEMA, drawing_array

    n = len(key_ids)
    n_strokes = 1 + rng.negative_binomial(2, 2 / (2 + 4.7), n)
    s = int(n_strokes.sum())
    k = 1 + rng.negative_binomial(1.3, 1.3 / (1.3 + 7.4), s)  # points per stroke, as in _synth.py
    p = int(k.sum())
    stroke_off = np.concatenate(([0], np.cumsum(k))).astype(np.int32)
    stroke_of_point = np.repeat(np.arange(s), k)
    x = _walk(rng, stroke_off[:-1], stroke_of_point, p)
    y = _walk(rng, stroke_off[:-1], stroke_of_point, p)
    drawing = drawing_array({"x": x, "y": y}, k, n_strokes)
    draw_off = np.concatenate(([0], np.cumsum(n_strokes))).astype(np.int32)
    n_points = np.add.reduceat(k, draw_off[:-1])
    cc = np.array(["US", "GB", "CA", "DE", "RU", "BR", "FR", "JP"], dtype=object)
    ts = 1483228800_000000 + rng.integers(0, 8_000_000, n) * 1_000_000 + rng.integers(0, 100_000, n) * 10
    cols = [
        pa.array(key_ids, pa.uint64()),
        pa.array(np.full(n, word, dtype=object), pa.string()),
        pa.array(cc[rng.choice(len(cc), n, p=[0.44, 0.1, 0.1, 0.1, 0.08, 0.08, 0.05, 0.05])], pa.string()),
        pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        pa.array(rng.random(n) < 0.915, pa.bool_()),
        pa.array(n_strokes, pa.uint16()),
        pa.array(n_points, pa.uint32()),
        drawing,
    ]
    return pa.Table.from_arrays(cols, schema=DRAWING_SCHEMA)


def write_fetch_output(out: Path, n: int, classes: list[str], seed: int = 0) -> tuple[int, float]:
    """A fetch output (docs/FORMATS.md section 1) of ``n`` drawings split over ``classes``; cached by a stamp."""
    import numpy as np
    import pyarrow.parquet as pq

    from quickdraw.sources.schema import SCHEMA_VERSION

    stamp = out / ".bench-stamp"
    key = f"{n} {','.join(classes)} {seed} v{SCHEMA_VERSION}"
    if stamp.is_file() and stamp.read_text() == key:
        return n, 0.0
    t0 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(seed)
    keys = np.uint64(4_500_000_000_000_000) + rng.permutation(n).astype(np.uint64) * np.uint64(1000) \
        + rng.integers(0, 1000, n).astype(np.uint64)  # unique, 16 digits, in random order
    bounds = np.linspace(0, n, len(classes) + 1).astype(np.int64)
    for ci, word in enumerate(classes):
        table = _drawing_table(rng, word, keys[bounds[ci]:bounds[ci + 1]])
        meta = {"schema_version": SCHEMA_VERSION, "word": word, "source_url": "synthetic://bench_prepare_cache"}
        table = table.replace_schema_metadata({"quickdraw": json.dumps(meta)})
        d = out / word
        d.mkdir(parents=True, exist_ok=True)
        part = d / "part-00000.parquet"
        # as fetch writes parts: byte-stream-split per-point leaves, dictionaries only for word and countrycode
        pq.write_table(table, part, compression="zstd", compression_level=1, use_dictionary=["word", "countrycode"],
                       column_encoding={f"drawing.{c}.list.element": "BYTE_STREAM_SPLIT" for c in ("x", "y")})
        sha = hashlib.sha256(part.read_bytes()).hexdigest()
        identity = {"schema_version": SCHEMA_VERSION, "source": {"size": None, "etag": None, "generation": None},
                    "options": {}}
        manifest = {"word": word, "source_url": meta["source_url"], "identity": identity,
                    "options": {}, "counts": {"read": table.num_rows, "accepted": table.num_rows, "filtered": {},
                                              "rejected": {}, "stopped_early": False},
                    "parts": [{"file": part.name, "rows": table.num_rows, "sha256": sha}],
                    "schema_version": SCHEMA_VERSION}
        (d / "_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    stamp.write_text(key)
    return n, time.perf_counter() - t0


def write_strokes(out: Path, n: int, classes: list[str]) -> float:
    """Prepare-format shards of ``n`` sequences (both formats), cached by a stamp."""
    from quickdraw.cache.synthetic import write_synthetic_strokes

    stamp = out / ".bench-stamp"
    key = f"{n} {','.join(classes)}"
    if stamp.is_file() and stamp.read_text() == key:
        return 0.0
    t0 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    write_synthetic_strokes(out, classes, n // len(classes), seed=0)
    stamp.write_text(key)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------- children


def child_prepare(spec: dict[str, Any]) -> dict[str, Any]:
    from quickdraw.pipeline.prepare import prepare

    t0 = time.perf_counter()
    res = prepare(spec["in"], spec["out"])
    secs = time.perf_counter() - t0
    return {"seconds": secs, "drawings": res.read, "kept": res.kept, "peak_rss_mb": _peak_rss_mb()}


def child_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """What a notebook does: Python lists -> per-drawing numpy stroke-3/stroke-5 -> lists -> pa.table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, out = Path(spec["in"]), Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    words = sorted(p.name for p in src.iterdir() if (p / "_manifest.json").is_file())
    keys, labels, s3s, s5s = [], [], [], []
    read = 0
    for label, word in enumerate(words):
        t = pq.read_table(src / word / "part-00000.parquet", columns=["key_id", "drawing"])
        for key, drawing in zip(t.column("key_id").to_pylist(), t.column("drawing").to_pylist()):
            read += 1
            xs = np.asarray(drawing["x"], dtype=np.int16)
            ys = np.asarray(drawing["y"], dtype=np.int16)
            if len(xs) < 6:
                continue
            lift = np.zeros(len(xs), dtype=np.int16)
            lift[np.cumsum(drawing["stroke_len"]) - 1] = 1
            s3 = np.stack([np.diff(xs, prepend=0), np.diff(ys, prepend=0), lift], axis=1)[:250]
            s3[-1, 2] = 1
            s5 = np.zeros((len(s3) + 1, 5), dtype=np.int16)
            s5[:-1, :2] = s3[:, :2]
            s5[:-1, 2] = 1 - s3[:, 2]
            s5[:-1, 3] = s3[:, 2]
            s5[-1, 4] = 1
            keys.append(key)
            labels.append(label)
            s3s.append(s3.tolist())
            s5s.append(s5.tolist())
    for fmt, seqs in (("stroke3", s3s), ("stroke5", s5s)):
        pq.write_table(pa.table({"key_id": keys, "label": labels, "sequence": seqs}), out / f"{fmt}.parquet")
    secs = time.perf_counter() - t0
    return {"seconds": secs, "drawings": read, "kept": len(keys), "peak_rss_mb": _peak_rss_mb()}


def child_build(spec: dict[str, Any]) -> dict[str, Any]:
    from quickdraw.cache import build_cache

    t0 = time.perf_counter()
    cv = build_cache(spec["in"], spec["root"], "bench")
    secs = time.perf_counter() - t0
    m = cv.manifest
    return {"seconds": secs, "sequences": m["counts"]["sequences"], "bytes": m["counts"]["bytes"],
            "path": str(cv.path), "peak_rss_mb": _peak_rss_mb()}


def child_open(spec: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    import quickdraw as qd

    if spec["warm_imports"]:
        import quickdraw.cache.store
        import quickdraw.datasets.sequence
    t0 = time.perf_counter()
    ds = qd.load("bench", split="train", root=spec["root"])
    t_load = time.perf_counter() - t0
    out = {"seconds": t_load, "since_start": time.perf_counter() - t_start, "n": len(ds), "peak_rss_mb": _peak_rss_mb()}
    if spec.get("access"):
        import numpy as np

        idx = np.random.default_rng(0).integers(0, len(ds), spec["access"]).tolist()
        for i in idx[:1000]:  # warm the code path
            ds[i]
        t0 = time.perf_counter()
        for i in idx:
            ds[i]
        out["access_seconds"] = (time.perf_counter() - t0) / len(idx)
        t0 = time.perf_counter()
        for _ in idx:
            pass
        out["loop_seconds"] = (time.perf_counter() - t0) / len(idx)
    return out


def child_stats(spec: dict[str, Any]) -> dict[str, Any]:
    from quickdraw.pipeline.stats import compute_stats

    t0 = time.perf_counter()
    doc = compute_stats(spec["path"])
    secs = time.perf_counter() - t0
    return {"seconds": secs, "drawings": doc["total"], "kind": doc["kind"], "peak_rss_mb": _peak_rss_mb()}


CHILDREN = {"prepare": child_prepare, "baseline": child_baseline, "build": child_build, "open": child_open,
            "stats": child_stats}


# ------------------------------------------------------------------------------------------------- parent


def run_child(kind: str, spec: dict[str, Any], env: dict[str, str], fresh: str | None = None) -> dict[str, Any]:
    if fresh:  # an output that must not exist (prepare cleans, but build_cache would be a no-op)
        shutil.rmtree(spec[fresh], ignore_errors=True)
    return _run_child(__file__, kind, spec, env, wall_key="process_wall")


def best_of(kind: str, spec: dict[str, Any], env: dict[str, str], repeat: int, label: str,
            fresh: str | None = None, key: str = "seconds") -> dict[str, Any]:
    best = _best_of(lambda: run_child(kind, spec, env, fresh), repeat, label,
                    lambda r: f"{r[key]:.4g} s, peak RSS {r['peak_rss_mb']:.0f} MB",
                    key=key, all_key="all", also_min=("access_seconds",))
    if "access_seconds" in best:
        print(f"  {label}: ds[i] per call, best of {repeat}: {best['access_seconds'] * 1e6:.2f} us", flush=True)
    return best


def _dir_mb(p: Path) -> float:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / MB


def main() -> int:
    ap = argparse.ArgumentParser(description="prepare / cache build / load / stats benchmarks on synthetic data")
    ap.add_argument("--n", type=int, default=1_000_000, help="sequences in the cache and stats inputs (default 1M)")
    ap.add_argument("--prepare-n", type=int, default=None, help="drawings fed to prepare (default: --n)")
    ap.add_argument("--baseline-n", type=int, default=20_000, help="drawings fed to the (slow) baseline")
    ap.add_argument("--access", type=int, default=1_000_000, help="random ds[i] calls timed")
    ap.add_argument("--repeat", type=int, default=3, help="runs per scenario; best is shown")
    ap.add_argument("--keep", type=Path, help="work dir to keep (inputs are cached there)")
    a = parse_args_or_run_child(ap, CHILDREN)
    if a is None:  # ran one scenario as a child process
        return 0

    pn = a.prepare_n or a.n
    root, tmp = work_dir(a.keep, "bench_prepare_cache-")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("QUICKDRAW_CACHE", None)
    res: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}}
    try:
        t_all = time.perf_counter()
        raw, raw_small, strokes = root / "raw", root / "raw-baseline", root / "strokes"
        _, s1 = write_fetch_output(raw, pn, CLASSES)
        _, s2 = write_fetch_output(raw_small, a.baseline_n, CLASSES, seed=1)
        s3 = write_strokes(strokes, a.n, CLASSES)
        print(f"inputs: fetch output {pn:,} drawings ({_dir_mb(raw):.0f} MB, {s1:.1f} s), baseline input "
              f"{a.baseline_n:,} ({s2:.1f} s), prepare-format shards {a.n:,} sequences ({_dir_mb(strokes):.0f} MB, "
              f"{s3:.1f} s)", flush=True)

        print("a. prepare ...", flush=True)
        res["prepare"] = best_of("prepare", {"in": str(raw), "out": str(root / "out-prepare")}, env, a.repeat,
                                 "prepare", fresh="out")
        res["baseline"] = best_of("baseline", {"in": str(raw_small), "out": str(root / "out-baseline")}, env,
                                  min(a.repeat, 2), "baseline", fresh="out")
        res["prepare_small"] = best_of("prepare", {"in": str(raw_small), "out": str(root / "out-prepare-small")},
                                       env, a.repeat, "prepare (baseline input)", fresh="out")

        print("b. cache build ...", flush=True)
        cache_root = root / "cache"
        res["build"] = best_of("build", {"in": str(strokes), "root": str(cache_root)}, env, a.repeat, "build",
                               fresh="root")

        print("c. open + random access ...", flush=True)
        res["open_cold"] = best_of("open", {"root": str(cache_root), "warm_imports": False}, env, a.repeat,
                                   "load incl. imports")
        res["open"] = best_of("open", {"root": str(cache_root), "warm_imports": True, "access": a.access}, env,
                              a.repeat, "load, modules imported")

        print("d. compute_stats ...", flush=True)
        res["stats_cache"] = best_of("stats", {"path": res["build"]["path"]}, env, a.repeat, "stats cache")
        res["stats_prepare"] = best_of("stats", {"path": str(strokes)}, env, a.repeat, "stats prepare output")
        res["stats_fetch"] = best_of("stats", {"path": str(raw)}, env, a.repeat, "stats fetch output")
        res["total_seconds"] = time.perf_counter() - t_all
        report(res, a, pn)
        if a.json:
            a.json.write_text(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


def report(res: dict[str, Any], a: argparse.Namespace, pn: int) -> None:
    print()
    print(f"prepare / cache benchmark: synthetic data, {len(CLASSES)} classes; time = best of {a.repeat} runs "
          f"(baseline: {min(a.repeat, 2)}), each in a fresh process, imports outside the timer; "
          f"peak RSS = highest over the runs; total {res['total_seconds']:.0f} s")
    print()
    base = res["baseline"]
    bdps = base["drawings"] / base["seconds"]

    def prow(label: str, r: dict[str, Any]) -> list[str]:
        dps = r["drawings"] / r["seconds"]
        return [label, f"{r['drawings']:,}", f"{r['kept']:,}", f"{r['seconds']:.2f}", f"{dps:,.0f}",
                f"{r['peak_rss_mb']:.0f}", f"{dps / bdps:.1f}x"]

    print("a. prepare throughput (stroke-3 + stroke-5, min_len 6, max_len 250 truncate, 3 splits)")
    print(table(["scenario", "drawings", "kept", "seconds", "drawings/s", "peak RSS MB", "speed-up"], [
        prow("naive loop: to_pylist + numpy per drawing + pa.table", base),
        prow("quickdraw prepare, same input", res["prepare_small"]),
        prow("quickdraw prepare", res["prepare"]),
    ]))
    b = res["build"]
    seqs = b["sequences"]
    print()
    print(f"b. cache build (stroke3 + stroke5, train/val/test; {b['bytes'] / MB:.0f} MB written)")
    print(table(["scenario", "sequences/format", "seconds", "sequences/s", "peak RSS MB"], [
        ["quickdraw.cache.build_cache", f"{seqs['stroke3']:,}", f"{b['seconds']:.2f}",
         f"{seqs['stroke3'] / b['seconds']:,.0f}", f"{b['peak_rss_mb']:.0f}"],
    ]))
    oc, o = res["open_cold"], res["open"]
    acc = o["access_seconds"]
    print()
    print(f"c. open the {seqs['stroke3']:,}-sequence cache in a fresh process (train split: {o['n']:,} sequences)")
    print(table(["scenario", "time", "process wall*", "peak RSS MB"], [
        ["qd.load, first call incl. lazy imports (numpy, ...)", f"{oc['seconds'] * 1e3:.1f} ms",
         f"{oc['process_wall'] * 1e3:.0f} ms", f"{oc['peak_rss_mb']:.0f}"],
        ["qd.load, quickdraw.datasets already imported", f"{o['seconds'] * 1e3:.1f} ms",
         f"{o['process_wall'] * 1e3:.0f} ms", f"{o['peak_rss_mb']:.0f}"],
        [f"ds[i], {a.access:,} random i (Python loop)", f"{acc * 1e6:.2f} us",
         f"(empty loop {o['loop_seconds'] * 1e9:.0f} ns)", ""],
    ]))
    print("* whole child process as seen by the parent: interpreter start, imports, the load (and, on the second "
          "row, the ds[i] loop)")
    print()
    print("d. compute_stats")
    srows = []
    for key, label in (("stats_cache", "cache version"), ("stats_prepare", "prepare output"),
                       ("stats_fetch", "fetch output")):
        r = res[key]
        srows.append([label, f"{r['drawings']:,}", f"{r['seconds']:.3f}", f"{r['drawings'] / r['seconds']:,.0f}",
                      f"{r['peak_rss_mb']:.0f}"])
    print(table(["input", "drawings", "seconds", "drawings/s", "peak RSS MB"], srows))
    stats_n = [res[k] for k in ("stats_cache", "stats_prepare", "stats_fetch") if res[k]["drawings"] >= a.n * 0.99]
    worst = max(r["seconds"] for r in stats_n) if stats_n else float("nan")
    checks = [
        (f"qd.load < {TARGET_OPEN_S * 1e3:g} ms (modules imported)", f"{o['seconds'] * 1e3:.1f} ms",
         o["seconds"] < TARGET_OPEN_S),
        (f"ds[i] < {TARGET_ACCESS_S * 1e6:g} us", f"{acc * 1e6:.2f} us", acc < TARGET_ACCESS_S),
        (f"compute_stats on {a.n:,} drawings < {TARGET_STATS_S:g} s (slowest input of that size)",
         f"{worst:.3f} s", worst < TARGET_STATS_S),
    ]
    print()
    print_checks(res, checks)
    print(f"info  qd.load incl. its lazy imports: {oc['seconds'] * 1e3:.0f} ms (not a target)")


if __name__ == "__main__":
    sys.exit(main())
