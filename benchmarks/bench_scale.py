"""fetch + prepare of N synthetic classes: locally (the default pools) vs on 1 and 2 Dask workers.

Workers are a ``LocalCluster`` of processes with one thread each on this machine (loopback). Each scenario
runs ``--repeat`` times into fresh folders; the table gives min-max ranges of wall time and of CPU time
(this process plus every worker process, from ``getrusage`` on each worker), and checks that every run's
files are byte-identical to the local run's. The per-task overhead is measured with no-op tasks (round trip
through scheduler and worker), and as the extra CPU a 1-worker run spends over the local run, per task.
Also printed: the per-drawing costs docs/SCALING.md extrapolates from (bytes read, CPU-s per 100k drawings
for fetch and prepare, Parquet and cache bytes per drawing).

    python benchmarks/bench_scale.py [--classes 50] [--per-class 4000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, work_dir  # noqa: E402
from _synth import write_class_file  # noqa: E402


def _tree(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".quickdraw.lock":
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _worker_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu(client: Any) -> float:
    own = time.process_time()
    if client is None:
        return own
    return own + sum(client.run(_worker_cpu).values())


def _noop(i: int) -> int:
    return i


def _run(words: list[str], src: Path, base: Path, client: Any, tag: str) -> dict[str, Any]:
    from quickdraw.pipeline.fetch import FetchOptions, fetch
    from quickdraw.pipeline.prepare import prepare

    ex = client.get_executor(pure=False) if client is not None else None
    raw, st = base / f"raw-{tag}", base / f"st-{tag}"
    shutil.rmtree(raw, ignore_errors=True)
    shutil.rmtree(st, ignore_errors=True)
    c0, t0 = _cpu(client), time.perf_counter()
    res = fetch(words, raw, FetchOptions(source=str(src)), executor=ex)
    c1, t1 = _cpu(client), time.perf_counter()
    pres = prepare(raw, st, executor=ex)
    c2, t2 = _cpu(client), time.perf_counter()
    assert not res.incomplete, [c.error for c in res.incomplete]
    return {"fetch_wall": t1 - t0, "fetch_cpu": c1 - c0, "prep_wall": t2 - t1, "prep_cpu": c2 - c1,
            "raw": _tree(raw), "st": _tree(st), "drawings": pres.read, "bytes_read": sum(c.bytes_read for c in res.classes),
            "raw_bytes": sum(p.stat().st_size for p in raw.rglob("part-*.parquet")),
            "st_bytes": sum(p.stat().st_size for p in st.rglob("part-*.parquet")), "files": len(pres.files)}


def _rng(xs: list[float], fmt: str = "{:.2f}") -> str:
    return fmt.format(min(xs)) if len(xs) == 1 else f"{fmt.format(min(xs))}-{fmt.format(max(xs))}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--per-class", type=int, default=4000, help="drawings per class (~500 bytes each)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    from distributed import Client, LocalCluster

    from quickdraw.classes import all_classes

    words = sorted(all_classes())[: args.classes]
    base, tmp = work_dir(None, "bench_scale-")
    src = base / "src"
    src.mkdir(parents=True, exist_ok=True)
    for i, w in enumerate(words):
        write_class_file(src / f"{w}.ndjson", args.per_class * 500 / 1e6, word=w, seed=i)

    runs: dict[str, list[dict[str, Any]]] = {"local": [], "dask-1": [], "dask-2": []}
    overhead: dict[str, list[float]] = {}
    clusters = {n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=logging.ERROR)
                for n in (1, 2)}
    try:
        clients = {n: Client(c) for n, c in clusters.items()}
        for n, cl in clients.items():  # warm the workers (imports, numba compilation) before timing
            _run(words[:2], src, base, cl, f"warm{n}")
        _run(words[:2], src, base, None, "warm0")
        for _ in range(args.repeat):
            # Interleaved, so that the machine's load drifts over every scenario alike.
            runs["local"].append(_run(words, src, base, None, "local"))
            for n, cl in clients.items():
                runs[f"dask-{n}"].append(_run(words, src, base, cl, f"dask{n}"))
                ex = cl.get_executor(pure=False)
                t = time.perf_counter()
                list(ex.map(_noop, range(200)))
                overhead.setdefault(f"dask-{n}", []).append((time.perf_counter() - t) / 200 * 1e3)
        for c in clients.values():
            c.close()
    finally:
        for c in clusters.values():
            c.close()

    ref = runs["local"][0]
    identical = all(r["raw"] == ref["raw"] and r["st"] == ref["st"] for rs in runs.values() for r in rs)
    n_tasks_fetch = len(words)
    n_tasks_prep = len(words) + ref["files"]
    rows = []
    for name, rs in runs.items():
        fw = [r["fetch_wall"] for r in rs]
        pw = [r["prep_wall"] for r in rs]
        rows.append([name, _rng(fw), _rng([r["fetch_cpu"] for r in rs]), _rng(pw), _rng([r["prep_cpu"] for r in rs]),
                     _rng([a + b for a, b in zip(fw, pw)])])
    print(f"{len(words)} classes x {args.per_class} drawings ({ref['drawings']:,} drawings, "
          f"{ref['bytes_read'] / 1e6:.0f} MB ndjson), {args.repeat} runs each, {os.cpu_count()} cores")
    print(table(["scenario", "fetch wall s", "fetch CPU s", "prepare wall s", "prepare CPU s", "total wall s"], rows))
    best = {k: min(r["fetch_wall"] + r["prep_wall"] for r in v) for k, v in runs.items()}
    worst = {k: max(r["fetch_wall"] + r["prep_wall"] for r in v) for k, v in runs.items()}
    print(f"speed-up 2 vs 1 worker (total wall): {worst['dask-1'] / best['dask-2']:.2f}x best case, "
          f"{best['dask-1'] / worst['dask-2']:.2f}x worst case")
    for k, v in overhead.items():
        print(f"{k}: no-op task round trip {_rng(v)} ms")
    extra = [(d["fetch_cpu"] + d["prep_cpu"] - l["fetch_cpu"] - l["prep_cpu"]) / (n_tasks_fetch + n_tasks_prep) * 1e3
             for d, l in zip(runs["dask-1"], runs["local"])]
    print(f"extra CPU per task, 1 worker vs local: {_rng(extra, '{:.0f}')} ms "
          f"({n_tasks_fetch} fetch + {n_tasks_prep} prepare tasks)")
    print(f"outputs byte-identical across all runs: {identical}")
    per100k = 1e5 / ref["drawings"]
    loc = runs["local"]
    print(json.dumps({
        "bytes_read_per_drawing": ref["bytes_read"] / ref["drawings"],
        "fetch_cpu_s_per_100k": [round(min(r["fetch_cpu"] for r in loc) * per100k, 2), round(max(r["fetch_cpu"] for r in loc) * per100k, 2)],
        "prepare_cpu_s_per_100k": [round(min(r["prep_cpu"] for r in loc) * per100k, 2), round(max(r["prep_cpu"] for r in loc) * per100k, 2)],
        "raw_parquet_bytes_per_drawing": ref["raw_bytes"] / ref["drawings"],
        "strokes_parquet_bytes_per_drawing": ref["st_bytes"] / ref["drawings"],
    }))
    from quickdraw.cache import build_cache

    shutil.rmtree(base / "cache", ignore_errors=True)
    t = time.process_time()
    cv = build_cache(base / "st-local", base / "cache", "bench")
    print(json.dumps({"cache_bytes_per_drawing": cv.size_bytes / ref["drawings"],
                      "cache_build_cpu_s_per_100k": round((time.process_time() - t) * per100k, 2)}))
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
