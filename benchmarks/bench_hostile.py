"""Hostile input: ``quickdraw fetch`` keeps its memory and its quarantine bounded whatever the ndjson holds.

Each scenario is a fetch of one class (``cat``) from a local folder, run in a fresh Python subprocess (so one
run's peak RSS cannot hide another's), ``--repeat`` times:

0. baseline: a well-formed synthetic class (``_synth.py``, ~50 MB): the RSS a normal fetch takes, measured in
   the same run, to read the others against;
1. one-byte bad lines: ``b"x\\n" * 4M`` (8 MB, four million ``bad_json`` lines);
2. mostly bad: good drawings interleaved with ~8 bad lines each of several reasons (``bad_json``,
   ``missing_key``, ``out_of_range``) and, every 10th drawing, a 20 KB ``bad_key_id`` line (~40 MB);
3. one 500 MB line without a newline in it (a JSON string of ``A``), then a newline and a few good lines;
   3b. the same 500 MB line alone, with no newline at all (the file ends inside it);
4. 64 lines of 5 MB each (over the 4 MiB ``MAX_LINE_BYTES``; half a one-stroke drawing of ~800k points,
   half a JSON string), then a few good lines.

Inputs are synthesised in the work dir (never copied from shared data) and cached there with ``--keep``. The
numba scanner is compiled once into a fresh cache (``NUMBA_CACHE_DIR`` under the work dir); every run first
does a whole fetch of 200 synthetic drawings into a scratch dir (loads the compiled code, outside the timer). **wall s** and **CPU s** cover only the ``fetch()``
call (CPU = ``time.process_time()``: user + system of the child process, every thread); **peak RSS** is the
child's ``VmHWM`` (imports included), the highest over the runs; **quarantine MB** is the size of
``<out>/cat/_quarantine.ndjson``. Accepted and rejected counts are checked against what was generated.

    python benchmarks/bench_hostile.py [--scale 1.0] [--quick] [--repeat 3] [--keep DIR] [--trace] [--json FILE]

``--scale`` multiplies every input size (the 5 MB lines stay 5 MB: their count is scaled; the long line
stays over the limit); ``--quick`` is ``--scale 0.1 --repeat 1`` (well under a minute).

Targets (PASS/MISS; exit 1 on a miss): on every scenario, peak RSS <= 500 MB and quarantine <= 64 MB.
When a target is missed, the worst run's RSS over time (VmRSS sampled every 20 ms during the fetch) is
printed; with ``--trace`` the scenario is also run once more under ``tracemalloc`` and the top allocation
sites are printed (slow: a flood of bad lines runs ~100x slower under it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:  # run as a script this is already so; imported from elsewhere it is not
    sys.path.insert(0, str(HERE))
from _common import MB, best_of, parse_args_or_run_child, peak_rss_mb, print_checks, rss_mb, run_child, table, work_dir

WORD = "cat"
TARGET_RSS_MB = 500.0
TARGET_QUARANTINE_MB = 64.0
QUARANTINE = "_quarantine.ndjson"
LONG_LINE_LIMIT = 4 << 20  # quickdraw.sources.ndjson.MAX_LINE_BYTES (not imported: the parent stays light)


# ----------------------------------------------------------------------------------------------- children


class _RssSampler(threading.Thread):
    """VmRSS every ``every`` seconds while the fetch runs: a coarse picture of when the memory is taken."""

    def __init__(self, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self.done = every, [], threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append((time.perf_counter() - self.t0, rss_mb()))
            self.done.wait(self.every)

    def summary(self, points: int = 12) -> list[list[float]]:
        s = self.samples
        step = max(1, len(s) // points)
        return [[round(t, 3), round(r, 1)] for t, r in s[::step]]


def child_compile(spec: dict[str, Any]) -> dict[str, Any]:
    """Import the scanner and run it once (compiles into NUMBA_CACHE_DIR when that is empty)."""
    t0 = time.perf_counter()
    _warm(Path(spec["dir"]))
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


def _warm(d: Path) -> None:
    """A whole fetch of 200 synthetic drawings, so every compiled function fetch uses, with the argument types
    fetch gives it (a view of a reused bytearray, not bytes), is compiled or loaded from the cache untimed."""
    from _synth import synth_bytes

    from quickdraw.pipeline.fetch import FetchOptions, fetch

    src = d / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / f"{WORD}.ndjson").write_bytes(synth_bytes(200, WORD, seed=1))
    fetch([WORD], d / "out", FetchOptions(source=str(src)), concurrency=1)
    shutil.rmtree(d)


def child_fetch(spec: dict[str, Any]) -> dict[str, Any]:
    from quickdraw.pipeline.fetch import FetchOptions, fetch

    _warm(Path(spec["out"] + "-warm"))  # JIT cache load, outside the timer
    tracing = bool(spec.get("tracemalloc"))
    if tracing:
        import tracemalloc

        tracemalloc.start(8)
    rss0 = rss_mb()
    sampler = _RssSampler()
    sampler.start()
    w0, c0 = time.perf_counter(), time.process_time()
    res = fetch([WORD], spec["out"], FetchOptions(source=spec["source"]), concurrency=1)
    secs, cpu = time.perf_counter() - w0, time.process_time() - c0
    sampler.done.set()
    sampler.join()
    c = res.classes[0]
    if c.status != "fetched":
        raise SystemExit(f"fetch did not complete: {c}")
    q = Path(spec["out"]) / WORD / QUARANTINE
    q_lines = q.read_bytes().count(b"\n") if q.exists() else 0
    out: dict[str, Any] = {
        "seconds": secs, "cpu_seconds": cpu, "accepted": c.accepted, "rejected": dict(c.rejected),
        "read": c.read, "bytes": c.size, "bytes_read": c.bytes_read,
        "quarantine_bytes": q.stat().st_size if q.exists() else 0, "quarantine_lines": q_lines,
        "rss_before_mb": rss0, "peak_rss_mb": peak_rss_mb(), "rss_timeline": sampler.summary(),
    }
    if tracing:
        snap = tracemalloc.take_snapshot()
        cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["traced_peak_mb"] = peak / MB
        out["traced_top"] = [f"{s.size / MB:8.1f} MB  {s.count:>8} blocks  {s.traceback.format()[-1].strip()}"
                             for s in snap.statistics("lineno")[:8]]
    return out


CHILDREN = {"compile": child_compile, "fetch": child_fetch}


# ------------------------------------------------------------------------------------------------- inputs


def _cached(path: Path, key: str) -> dict[str, Any] | None:
    meta = path.with_name(path.name + ".meta")
    if path.exists() and meta.exists():
        got = json.loads(meta.read_text())
        if got.get("key") == key and got.get("bytes") == path.stat().st_size:
            return dict(got["expect"], bytes=got["bytes"], gen_seconds=0.0)
    return None


def _write(path: Path, key: str, pieces: Any, expect: dict[str, Any]) -> dict[str, Any]:
    """Write the byte pieces (an iterable) to ``path``; ``expect`` = what a fetch of it must count."""
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".incomplete")
    with open(tmp, "wb") as f:
        for p in pieces:
            f.write(p)
    os.replace(tmp, path)
    size = path.stat().st_size
    path.with_name(path.name + ".meta").write_text(json.dumps({"key": key, "bytes": size, "expect": expect}))
    return dict(expect, bytes=size, gen_seconds=time.perf_counter() - t0)


def _good_lines(n: int, seed: int) -> list[bytes]:
    from _synth import synth_bytes

    return synth_bytes(n, WORD, seed=seed).splitlines(keepends=True)


def make_one_byte(path: Path, scale: float) -> dict[str, Any]:
    n = max(1000, int(4_000_000 * scale))
    key = f"one_byte {n}"
    return _cached(path, key) or _write(path, key, [b"x\n" * n], {"accepted": 0, "rejected": {"bad_json": n}})


def make_mostly_bad(path: Path, scale: float) -> dict[str, Any]:
    """Blocks of one good drawing, 4 bad_json, 2 missing_key, 2 out_of_range; every 10th block also a 20 KB
    bad_key_id line. ~4.5 KB a block: ~9,000 blocks at scale 1 (~40 MB)."""
    n_blocks = max(200, int(9000 * scale))
    key = f"mostly_bad {n_blocks}"
    got = _cached(path, key)
    if got:
        return got
    good = _good_lines(n_blocks * 5, seed=7)  # 1 good, 2 to drop a key from, 2 to push out of range
    junk = [b"not json at all\n", b'{"word":"cat","drawing":[[[1,2\n', b"}{\n", b'{"word": "cat", \n']

    def pieces() -> Any:
        for b in range(n_blocks):
            g, m1, m2, o1, o2 = good[5 * b : 5 * b + 5]
            parts = [g, *junk]
            for m in (m1, m2):  # drop "drawing": missing_key
                parts.append(m[: m.index(b',"drawing":')] + b"}\n")
            for o in (o1, o2):  # first coordinate 300: out_of_range
                i = o.index(b'"drawing":[[[') + len(b'"drawing":[[[')
                j = min(o.index(b",", i), o.index(b"]", i))
                parts.append(o[:i] + b"300" + o[j:])
            if b % 10 == 0:  # a 20 KB key id of letters: bad_key_id
                i = g.index(b'"key_id":"') + len(b'"key_id":"')
                j = g.index(b'"', i)
                parts.append(g[:i] + b"k" * 20_000 + g[j:])
            yield b"".join(parts)

    n_key = (n_blocks + 9) // 10
    expect = {"accepted": n_blocks, "rejected": {"bad_json": 4 * n_blocks, "missing_key": 2 * n_blocks,
                                                 "out_of_range": 2 * n_blocks, "bad_key_id": n_key}}
    return _write(path, key, pieces(), expect)


def make_long_line(path: Path, scale: float, newline: bool) -> dict[str, Any]:
    """One line of ``500 MB * scale`` (at least 2x the line limit) with no newline inside it; with ``newline``,
    it ends with one and 5 good lines follow, else the file ends inside it."""
    size = max(2 * LONG_LINE_LIMIT + 1, int(500 * MB * scale))
    key = f"long_line {size} {newline}"
    got = _cached(path, key)
    if got:
        return got
    head, tail = b'{"word":"cat","drawing":"', b'"}'
    block = b"A" * (8 << 20)

    def pieces() -> Any:
        yield head
        left = size - len(head) - len(tail)
        while left > 0:
            yield block[: min(left, len(block))]
            left -= len(block)
        yield tail
        if newline:
            yield b"\n"
            yield b"".join(_good_lines(5, seed=3))

    if newline:
        expect = {"accepted": 5, "rejected": {"too_large": 1}}
    else:  # the file ends inside the line: rejected as too_large (its length is known before its end)
        expect = {"accepted": 0, "rejected": {"too_large": 1}}
    return _write(path, key, pieces(), expect)


def make_five_mb_lines(path: Path, scale: float) -> dict[str, Any]:
    """``64 * scale`` (at least 4) lines of 5 MB: even ones a one-stroke drawing of ~830k in-range points per
    axis (the shape the fast scanner takes), odd ones a JSON string; then 5 good lines."""
    n = max(4, int(64 * scale))
    key = f"five_mb {n}"
    got = _cached(path, key)
    if got:
        return got
    line_bytes = 5 * 1_000_000
    pts = (line_bytes - 200) // 6  # "12," is 3 bytes, x and y
    coords = b",".join([b"12"] * pts)
    drawing_line = (b'{"word":"cat","countrycode":"US","timestamp":"2017-03-01 12:00:00.12345 UTC","recognized":true,'
                    b'"key_id":"5000000000000001","drawing":[[[' + coords + b"],[" + coords + b"]]]}\n")
    string_line = b'{"word":"cat","countrycode":"' + b"A" * (len(drawing_line) - 32) + b'"}\n'

    def pieces() -> Any:
        for i in range(n):
            yield drawing_line if i % 2 == 0 else string_line
        yield b"".join(_good_lines(5, seed=4))

    return _write(path, key, pieces(), {"accepted": 5, "rejected": {"too_large": n}})


# ------------------------------------------------------------------------------------------------- parent


def _fresh(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)


def main() -> int:
    ap = argparse.ArgumentParser(description="fetch on hostile ndjson: bounded memory and quarantine")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every input size (default 1)")
    ap.add_argument("--quick", action="store_true", help="--scale 0.1 --repeat 1 (well under a minute)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per scenario, each a fresh process (default 3)")
    ap.add_argument("--keep", type=Path, help="work dir to keep (inputs are cached there)")
    ap.add_argument("--trace", action="store_true",
                    help="on a miss, run the scenario once more under tracemalloc (slow: ~100x on bad-line floods)")
    a = parse_args_or_run_child(ap, CHILDREN)
    if a is None:
        return 0
    if a.quick:
        a.scale, a.repeat = 0.1, 1

    sys.path[:0] = [str(HERE)]
    from _synth import write_class_file

    root, tmp = work_dir(a.keep, "bench_hostile-")
    try:
        t_all = time.perf_counter()
        inputs: dict[str, dict[str, Any]] = {}
        scen: list[tuple[str, str]] = [
            ("0. baseline: well-formed synthetic class", "baseline"),
            ("1. one-byte bad lines (x\\n)", "one_byte"),
            ("2. mostly bad (4 reasons, 20 KB key ids)", "mostly_bad"),
            ("3. one 500 MB line, then good lines", "long_line"),
            ("3b. one 500 MB line, no newline at all", "long_line_eof"),
            ("4. 64 lines of 5 MB", "five_mb"),
        ]
        for label, name in scen:
            path = root / "in" / name / f"{WORD}.ndjson"
            if name == "baseline":
                size, n, secs = write_class_file(path, 50 * a.scale, WORD, seed=0)
                info = {"accepted": n, "rejected": {}, "bytes": size, "gen_seconds": secs}
            elif name == "one_byte":
                info = make_one_byte(path, a.scale)
            elif name == "mostly_bad":
                info = make_mostly_bad(path, a.scale)
            elif name == "long_line":
                info = make_long_line(path, a.scale, newline=True)
            elif name == "long_line_eof":
                info = make_long_line(path, a.scale, newline=False)
            else:
                info = make_five_mb_lines(path, a.scale)
            if name.startswith("long_line"):
                label = label.replace("500 MB", f"{info['bytes'] / MB:.0f} MB")
            elif name == "five_mb":
                label = label.replace("64", str(sum(info["rejected"].values())))
            info.update(source=str(path.parent), label=label)
            inputs[name] = info
            how = f"generated in {info['gen_seconds']:.1f} s" if info["gen_seconds"] else "cached"
            print(f"input {name}: {info['bytes'] / MB:.1f} MB, expect {info['accepted']:,} accepted, "
                  f"{sum(info['rejected'].values()):,} rejected ({how})", flush=True)

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        cache = root / "numba-cache"
        shutil.rmtree(cache, ignore_errors=True)  # always a cold compile first
        env["NUMBA_CACHE_DIR"] = str(cache)
        res: dict[str, Any] = {"scale": a.scale, "repeat": a.repeat, "inputs": inputs, "runs": {}}
        print("numba JIT ...", flush=True)
        res["compile"] = run_child(__file__, "compile", {"dir": str(root / "warm")}, env)
        print(f"  cold compile {res['compile']['seconds']:.1f} s (excluded below)", flush=True)

        outs = root / "out"
        scen = [(inputs[name]["label"], name) for _, name in scen]
        for label, name in scen:
            info = inputs[name]
            out = outs / name
            runs: list[dict[str, Any]] = []

            def one(out: Path = out, info: dict[str, Any] = info, runs: list[dict[str, Any]] = runs) -> dict[str, Any]:
                _fresh(out)  # fetch skips a class it already has
                r = run_child(__file__, "fetch", {"source": info["source"], "out": str(out)}, env)
                runs.append(r)
                return r

            print(f"{label} ({info['bytes'] / MB:.0f} MB) ...", flush=True)
            best = best_of(one, a.repeat, name, lambda r: (
                f"{r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU, peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(after imports {r['rss_before_mb']:.0f}), quarantine {r['quarantine_bytes'] / MB:.2f} MB "
                f"({r['quarantine_lines']} lines), accepted {r['accepted']:,}, rejected {r['rejected']}"))
            best["wall_range"] = [min(r["seconds"] for r in runs), max(r["seconds"] for r in runs)]
            best["cpu_range"] = [min(r["cpu_seconds"] for r in runs), max(r["cpu_seconds"] for r in runs)]
            best["quarantine_bytes"] = max(r["quarantine_bytes"] for r in runs)
            best["counts_exact"] = all(r["accepted"] == info["accepted"] and r["rejected"] == info["rejected"]
                                       for r in runs)
            best["all_runs"] = runs
            res["runs"][name] = best
            _fresh(out)

        report(res, scen, a)
        for _, name in scen:
            r = res["runs"][name]
            if r["peak_rss_mb"] > TARGET_RSS_MB or r["quarantine_bytes"] / MB > TARGET_QUARANTINE_MB:
                worst = max(r["all_runs"], key=lambda x: x["peak_rss_mb"])
                print(f"\n{name} missed: RSS over time in its worst run (s, MB): "
                      + ", ".join(f"{t:.2f}:{m:.0f}" for t, m in worst["rss_timeline"]))
                if a.trace:
                    print(f"profile of {name} (one more run, tracemalloc on; slower):", flush=True)
                    _fresh(outs / name)
                    t = run_child(__file__, "fetch", {"source": inputs[name]["source"], "out": str(outs / name),
                                                      "tracemalloc": True}, env)
                    print(f"  peak RSS {t['peak_rss_mb']:.0f} MB, traced (Python + numpy) peak {t['traced_peak_mb']:.0f} MB")
                    print("  RSS over time (s, MB): " + ", ".join(f"{x:.2f}:{m:.0f}" for x, m in t["rss_timeline"]))
                    for ln in t["traced_top"]:
                        print("  " + ln)
                    res["runs"][name]["profile"] = t
        print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
        if a.json:
            a.json.write_text(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


def report(res: dict[str, Any], scen: list[tuple[str, str]], a: argparse.Namespace) -> None:
    rows = []
    for label, name in scen:
        r = res["runs"][name]
        info = res["inputs"][name]
        (w0, w1), (c0, c1) = r["wall_range"], r["cpu_range"]
        rows.append([label, f"{info['bytes'] / MB:.1f}", f"{w0:.2f}-{w1:.2f}", f"{c0:.2f}-{c1:.2f}",
                     f"{r['peak_rss_mb']:.0f}", f"{r['quarantine_bytes'] / MB:.2f}", f"{r['accepted']:,}",
                     f"{sum(r['rejected'].values()):,}"])
    print()
    print(f"fetch of one class ({WORD}) from a local folder on hostile ndjson; scale {a.scale:g}, {a.repeat} runs "
          f"per scenario, each a fresh process; wall/CPU = min-max over the runs (fetch() call only; CPU = "
          f"user+sys of the child), peak RSS and quarantine = highest over the runs")
    print()
    print(table(["scenario", "input MB", "wall s", "CPU s", "peak RSS MB", "quarantine MB", "accepted", "rejected"],
                rows))
    print()
    checks = []
    for label, name in scen:
        r = res["runs"][name]
        checks.append((f"{name}: peak RSS <= {TARGET_RSS_MB:g} MB", f"{r['peak_rss_mb']:.0f} MB",
                       r["peak_rss_mb"] <= TARGET_RSS_MB))
        checks.append((f"{name}: quarantine <= {TARGET_QUARANTINE_MB:g} MB", f"{r['quarantine_bytes'] / MB:.2f} MB",
                       r["quarantine_bytes"] / MB <= TARGET_QUARANTINE_MB))
    for label, name in scen:  # not a memory target, but what the bounds must not cost
        r = res["runs"][name]
        exp = res["inputs"][name]
        checks.append((f"{name}: counts exact (accepted, rejected per reason)",
                       f"{r['accepted']:,} / {r['rejected']}" + ("" if r["counts_exact"] else
                                                                 f" (expected {exp['accepted']:,} / {exp['rejected']})"),
                       r["counts_exact"]))
    print_checks(res, checks)


if __name__ == "__main__":
    sys.exit(main())
