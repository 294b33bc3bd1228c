"""Fetch throughput and memory: ``quickdraw fetch`` against what a notebook does, on >= 100 MB of ndjson.

Scenarios (each run in a fresh Python subprocess, so one's peak RSS cannot hide another's):

1. baseline: ``open()`` the class file, ``json.loads`` per line, append the fields to Python lists, one
   ``pyarrow.table`` at the end, ``pyarrow.parquet.write_table``;
2. ``quickdraw.pipeline.fetch.fetch`` from a local folder source;
3. the same from a GCS emulator (fake-gcs-server on 127.0.0.1, read through gcsfs);
4. ``max_per_class=1000`` on the same file: the bytes read (``ClassResult.bytes_read``);
5. peak RSS of the quickdraw path at half and double the input size (it must not grow with the input).

The numba scanner is compiled once into a fresh cache (``NUMBA_CACHE_DIR`` under the work dir) and that
compile time is reported on its own; every timed quickdraw run first warms the kernel (a load from that
cache) and the time is excluded. Timings cover only the work (imports and warm-up are outside), are the
best of ``--repeat`` runs, and the peak RSS shown is the highest over those runs. Input files are read from
the page cache (generated just before), so the numbers are CPU-bound, not disk-bound.

    python benchmarks/bench_fetch.py [--mb 100] [--keep DIR] [--repeat 3] [--no-gcs] [--json FILE]

Targets: quickdraw >= 15x the baseline's drawings/s; peak RSS < 500 MB at every input size; bytes read for
``max_per_class=1000`` < 2 MB.
"""

from __future__ import annotations

import argparse
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
from _common import MB, parse_args_or_run_child, print_checks, rss_mb, table, work_dir
from _common import best_of as _best_of
from _common import peak_rss_mb as _peak_rss_mb
from _common import run_child as _run_child

WORD = "cat"
BUCKET = "quickdraw_bench"

TARGET_SPEEDUP = 15.0
TARGET_RSS_MB = 500.0
TARGET_CAP_BYTES = 2 * MB


# ----------------------------------------------------------------------------------------------- children


def child_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """What notebooks do: json.loads per line into Python lists, one pyarrow.table, one Parquet file."""
    import json as json_mod

    import pyarrow as pa
    import pyarrow.parquet as pq

    path, out = spec["path"], spec["out"]
    rss0 = rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    word, country, stamp, recognized, key_id, drawing = [], [], [], [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json_mod.loads(line)
            word.append(r["word"])
            country.append(r["countrycode"])
            stamp.append(r["timestamp"])
            recognized.append(r["recognized"])
            key_id.append(r["key_id"])
            drawing.append(r["drawing"])
    table = pa.table({"word": word, "countrycode": country, "timestamp": stamp, "recognized": recognized,
                      "key_id": key_id, "drawing": drawing})
    pq.write_table(table, out)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": secs, "cpu_seconds": cpu, "drawings": table.num_rows, "bytes": os.path.getsize(path), "rss_before_mb": rss0,
            "peak_rss_mb": _peak_rss_mb()}


def _warm_kernel(source: str) -> float:
    """Run the compiled scanner once on a few lines so that compile / cache load is not timed."""
    from quickdraw.sources.fs import class_url, open_source
    from quickdraw.sources.ndjson import parse_chunk

    t0 = time.perf_counter()
    fs, p = open_source(class_url(source, WORD))
    head = fs.cat_file(p, start=0, end=64 << 10)
    # Warm exactly what fetch runs: it parses a memoryview of its reused, writable bytearray, not the
    # read-only ``bytes`` cat_file returns. (scan_lines has one read-only signature that both match, so this
    # is belt and braces: a warm-up with another argument type once compiled a second signature.)
    parse_chunk(memoryview(bytearray(head[: head.rfind(b"\n") + 1])), 1, word=WORD)
    return time.perf_counter() - t0


def child_compile(spec: dict[str, Any]) -> dict[str, Any]:
    """Import the scanner (its one signature is compiled, or loaded from NUMBA_CACHE_DIR, at import) and run
    it once."""
    t0 = time.perf_counter()
    import quickdraw.sources._kernel  # noqa: F401

    t_import = time.perf_counter() - t0
    warm = _warm_kernel(spec["source"])
    return {"import_seconds": t_import, "seconds": warm, "peak_rss_mb": _peak_rss_mb()}


def child_fetch(spec: dict[str, Any]) -> dict[str, Any]:
    from quickdraw.pipeline.fetch import FetchOptions, fetch

    warm = _warm_kernel(spec["source"])
    rss0 = rss_mb()
    opts = FetchOptions(source=spec["source"], max_per_class=spec.get("max_per_class"))
    t0, c0 = time.perf_counter(), time.process_time()
    res = fetch([WORD], spec["out"], opts, concurrency=1)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    c = res.classes[0]
    if c.status != "fetched":
        raise SystemExit(f"fetch did not complete: {c}")
    return {"seconds": secs, "cpu_seconds": cpu, "drawings": c.accepted, "bytes": c.size, "bytes_read": c.bytes_read,
            "rejected": sum(c.rejected.values()), "warm_seconds": warm, "rss_before_mb": rss0,
            "peak_rss_mb": _peak_rss_mb()}


CHILDREN = {"baseline": child_baseline, "compile": child_compile, "fetch": child_fetch}


# ------------------------------------------------------------------------------------------------- parent


def run_child(kind: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    if "out" in spec:  # always a fresh output: fetch skips a class it already has
        out = Path(spec["out"])
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
    return _run_child(__file__, kind, spec, env)


def best_of(kind: str, spec: dict[str, Any], env: dict[str, str], repeat: int, label: str) -> dict[str, Any]:
    """Run a scenario ``repeat`` times, each in a fresh process and a fresh output dir; keep the fastest run,
    with the highest peak RSS seen over all runs."""
    runs: list[dict[str, Any]] = []

    def one() -> dict[str, Any]:
        runs.append(run_child(kind, spec, env))
        return runs[-1]

    best = _best_of(one, repeat, label, lambda r: f"{r['seconds']:.2f} s wall, {r.get('cpu_seconds', 0):.2f} s CPU, "
                                                  f"peak RSS {r['peak_rss_mb']:.0f} MB")
    # Every run's wall and CPU time, for the ranges in the report (a shared machine moves figures 2x).
    best["all_cpu_seconds"] = [r.get("cpu_seconds", float("nan")) for r in runs]
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description="quickdraw fetch vs a json.loads notebook loop")
    ap.add_argument("--mb", type=float, default=100.0, help="size of the main class file in MB (default 100)")
    ap.add_argument("--keep", type=Path, help="work dir to keep (synthetic inputs are cached there)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per quickdraw scenario; best is shown")
    ap.add_argument("--baseline-repeat", type=int, default=2, help="runs of the (slow) baseline")
    ap.add_argument("--no-gcs", action="store_true", help="skip the GCS emulator scenarios")
    ap.add_argument("--no-scale", action="store_true", help="skip the RSS-vs-input-size scenario")
    a = parse_args_or_run_child(ap, CHILDREN)
    if a is None:  # ran one scenario as a child process
        return 0

    sys.path[:0] = [str(HERE), str(REPO)]  # _synth, tests.emulator
    from _synth import write_class_file

    root, tmp = work_dir(a.keep, "bench_fetch-")
    emu = None
    try:
        # ---- inputs
        buckets = root / "buckets"
        local_src = buckets / BUCKET / "full" / "simplified"
        main_file = local_src / f"{WORD}.ndjson"
        sizes = {"main": a.mb}
        if not a.no_scale:
            sizes.update({"small": a.mb / 2, "large": a.mb * 2})
        files: dict[str, dict[str, Any]] = {}
        for name, mb in sizes.items():
            path = main_file if name == "main" else root / "scale" / f"{mb:g}MB" / f"{WORD}.ndjson"
            size, n, secs = write_class_file(path, mb, WORD, seed=0)
            files[name] = {"path": str(path), "source": str(path.parent), "bytes": size, "drawings": n, "gen_seconds": secs}
            how = f"generated in {secs:.1f} s" if secs else "cached"
            print(f"input {name}: {path} {size / MB:.1f} MB, {n:,} drawings, {size / n:.0f} B/drawing ({how})", flush=True)
        main = files["main"]

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
        cache = root / "numba-cache"
        shutil.rmtree(cache, ignore_errors=True)  # always a cold compile first
        env["NUMBA_CACHE_DIR"] = str(cache)
        outs = root / "out"
        outs.mkdir(exist_ok=True)
        res: dict[str, Any] = {"inputs": files}

        # ---- JIT
        print("numba JIT ...", flush=True)
        res["compile_cold"] = run_child("compile", {"source": main["source"]}, env)
        res["compile_cached"] = run_child("compile", {"source": main["source"]}, env)

        # ---- 1. baseline, 2. local fetch
        print("baseline ...", flush=True)
        res["baseline"] = best_of("baseline", {"path": main["path"], "out": str(outs / "baseline.parquet")}, env,
                                  a.baseline_repeat, "baseline")
        print("quickdraw fetch, local folder ...", flush=True)
        res["local"] = best_of("fetch", {"source": main["source"], "out": str(outs / "local")}, env, a.repeat, "local")
        res["local_cap"] = run_child("fetch", {"source": main["source"], "out": str(outs / "local-cap"),
                                               "max_per_class": 1000}, env)

        # ---- 3. GCS emulator, 4. max_per_class there
        if not a.no_gcs:
            from tests.emulator import start_emulator

            print("starting GCS emulator ...", flush=True)
            t0 = time.perf_counter()
            emu = start_emulator(buckets, root / "fake-gcs.log")
            print(f"  emulator up at {emu.url} in {time.perf_counter() - t0:.1f} s", flush=True)
            genv = dict(env, QUICKDRAW_GCS_ENDPOINT=emu.url)
            gsrc = f"gs://{BUCKET}/full/simplified"
            res["gcs"] = best_of("fetch", {"source": gsrc, "out": str(outs / "gcs")}, genv, a.repeat, "gcs")
            res["gcs_cap"] = run_child("fetch", {"source": gsrc, "out": str(outs / "gcs-cap"), "max_per_class": 1000},
                                       genv)
            emu.stop()
            emu = None

        # ---- 5. RSS vs input size
        if not a.no_scale:
            for name in ("small", "large"):
                f = files[name]
                print(f"quickdraw fetch, local folder, {f['bytes'] / MB:.0f} MB ...", flush=True)
                res[f"local_{name}"] = best_of("fetch", {"source": f["source"], "out": str(outs / f"local-{name}")},
                                               env, a.repeat, name)
            print(f"baseline, {files['small']['bytes'] / MB:.0f} MB ...", flush=True)
            res["baseline_small"] = best_of("baseline", {"path": files["small"]["path"],
                                                         "out": str(outs / "baseline-small.parquet")}, env, 1, "small")
        report(res, a)
        if a.json:
            a.json.write_text(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    finally:
        if emu is not None:
            emu.stop()
        if tmp is not None:
            tmp.cleanup()


def report(res: dict[str, Any], a: argparse.Namespace) -> None:
    main = res["inputs"]["main"]
    base = res["baseline"]
    base_dps = base["drawings"] / base["seconds"]

    def rng(v: list[float]) -> str:
        return f"{min(v):.2f}-{max(v):.2f}"

    def ratio(b: list[float], q: list[float]) -> str:
        # baseline time / quickdraw time, from the fastest and from the slowest runs of each
        return f"{min(b) / min(q):.1f}x ({max(b) / max(q):.1f}x)"

    def row(label: str, r: dict[str, Any], speedup: bool = True) -> list[str]:
        dps = r["drawings"] / r["seconds"]
        wall, cpu = r["all_seconds"], r["all_cpu_seconds"]
        return [label, rng(wall), rng(cpu), f"{dps:,.0f}", f"{r['peak_rss_mb']:.0f}",
                ratio(base["all_seconds"], wall) if speedup else "1.0x",
                ratio(base["all_cpu_seconds"], cpu) if speedup else "1.0x"]

    rows = [row("1. baseline: json.loads + lists + pa.table", base, speedup=False),
            row("2. quickdraw fetch, local folder", res["local"])]
    if "gcs" in res:
        rows.append(row("3. quickdraw fetch, GCS emulator (gcsfs)", res["gcs"]))
    cold, warm = res["compile_cold"], res["compile_cached"]
    print()
    print(f"quickdraw fetch benchmark: {WORD}.ndjson, {main['bytes'] / MB:.1f} MB, {main['drawings']:,} synthetic drawings "
          f"({main['bytes'] / main['drawings']:.0f} B each); time = best of {a.repeat} runs "
          f"({a.baseline_repeat} for the baseline), peak RSS = highest over those runs, each run a fresh process")
    print(f"numba JIT (excluded below): cold compile {cold['seconds']:.2f} s into an empty cache "
          f"(+{cold['import_seconds']:.2f} s import); later processes load it from the on-disk cache in "
          f"{warm['seconds']:.2f} s")
    print()
    print("speed-up = baseline time / quickdraw time: fastest run over fastest run (slowest over slowest)")
    print(table(["scenario", "wall s", "CPU s", "drawings/s (best)", "peak RSS MB", "speed-up wall", "speed-up CPU"],
                rows))
    print()
    cap_rows = []
    for key, label in (("local_cap", "local folder"), ("gcs_cap", "GCS emulator")):
        if key in res:
            r = res[key]
            cap_rows.append([f"4. max_per_class=1000, {label}", f"{r['drawings']:,}", f"{r['bytes_read'] / MB:.2f}",
                             f"{r['bytes'] / MB:.1f}", f"{r['seconds']:.3f}", f"{r['peak_rss_mb']:.0f}"])
    print(table(["scenario", "drawings", "MB read", "file MB", "seconds", "peak RSS MB"], cap_rows))
    scale_rows = []
    ok_rss = all(res[k]["peak_rss_mb"] < TARGET_RSS_MB for k in ("local", "gcs") if k in res)
    if "local_small" in res:
        print()
        for key in ("local_small", "local", "local_large"):
            r = res[key]
            base_r = {"local_small": res.get("baseline_small"), "local": base}.get(key)
            scale_rows.append([f"{r['bytes'] / MB:.0f}", f"{r['drawings']:,}", f"{r['rss_before_mb']:.0f}",
                               f"{r['peak_rss_mb']:.0f}", f"{r['drawings'] / r['seconds']:,.0f}",
                               f"{base_r['peak_rss_mb']:.0f}" if base_r else "(not run)"])
            ok_rss = ok_rss and r["peak_rss_mb"] < TARGET_RSS_MB
        print("5. peak RSS vs input size (quickdraw fetch from a local folder; baseline beside it)")
        print(table(["input MB", "drawings", "RSS after imports+warm MB", "peak RSS MB", "drawings/s",
                     "baseline peak RSS MB"], scale_rows))
    speedup = (res["local"]["drawings"] / res["local"]["seconds"]) / base_dps
    cap = max(res[k]["bytes_read"] for k in ("local_cap", "gcs_cap") if k in res)
    checks = [
        (f"speed-up vs baseline (local) >= {TARGET_SPEEDUP:g}x", f"{speedup:.1f}x", speedup >= TARGET_SPEEDUP),
        (f"peak RSS < {TARGET_RSS_MB:g} MB at every input size", "", ok_rss),
        (f"max_per_class=1000 reads < {TARGET_CAP_BYTES / MB:g} MB", f"{cap / MB:.2f} MB", cap < TARGET_CAP_BYTES),
    ]
    if "gcs" in res:
        g = (res["gcs"]["drawings"] / res["gcs"]["seconds"]) / base_dps
        checks.append((f"speed-up vs baseline (GCS emulator) >= {TARGET_SPEEDUP:g}x", f"{g:.1f}x", g >= TARGET_SPEEDUP))
    print()
    print_checks(res, checks)


if __name__ == "__main__":
    sys.exit(main())
