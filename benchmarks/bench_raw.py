"""Raw ndjson parsing: the compiled raw path against today's Python path, in the same run.

Input: every real raw drawing of the shared mirror (``../shared/data/quickdraw_dataset/full/raw``), relabelled
to one class and repeated ``--copies`` times, cut into the 4 MiB line-aligned chunks fetch reads. Rows:

* ``baseline`` -- today's path as it was before the raw scanner (``git show BASE:src/quickdraw/sources/raw.py``,
  loaded as its own module): orjson per line, ``check_raw_record``, flattening in Python, and for
  ``--simplify`` the old simplification kernel;
* ``exact`` -- the current exact path (``scanner=False``: the same orjson path, now with the new
  simplification), which is what refused lines take;
* ``scanner`` -- the current default (compiled scanner; Google's simplification kernel for ``--simplify``).

Every row is run ``--repeat`` times; the table gives the range of drawings/s over the runs, wall and CPU
seconds of the fastest run, the speed-up over the baseline in wall time (from the slowest and fastest runs of both) and in CPU time
(least CPU of each).
Kernels are compiled (cached) before timing. Run: ``.venv/bin/python benchmarks/bench_raw.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, wall_and_cpu  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "quickdraw_dataset" / "full" / "raw"
BASE = "bf8ef12"  # the last commit before the raw scanner and the parity simplification


def _baseline_module(tmp: Path) -> Any:
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASE}:src/quickdraw/sources/raw.py"],
                         check=True, capture_output=True).stdout
    path = tmp / "raw_baseline.py"
    path.write_bytes(src)
    spec = importlib.util.spec_from_file_location("raw_baseline", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _chunks(copies: int) -> tuple[list[bytes], int]:
    lines = []
    for f in sorted(DATA.glob("*.ndjson")):
        for line in f.read_bytes().splitlines():
            o = orjson.loads(line)
            o["word"] = "cat"
            lines.append(orjson.dumps(o))
    data = (b"\n".join(lines) + b"\n") * copies
    out, i = [], 0
    while i < len(data):
        j = data.rfind(b"\n", i, i + (4 << 20)) + 1
        j = len(data) if j <= i else j
        out.append(data[i:j])
        i = j
    return out, len(lines) * copies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=3, help="repeat the shared raw drawings this many times")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fetch", action="store_true", help="also time fetch() end to end, baseline parser patched in")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: the shared raw drawings are needed")
    from quickdraw.sources.raw import parse_raw_chunk

    chunks, n = _chunks(args.copies)
    mb = sum(map(len, chunks)) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        base = _baseline_module(Path(tmp))
        paths = {
            "baseline": lambda c, s: base.parse_raw_chunk(c, 1, word="cat", simplify=s),
            "exact": lambda c, s: parse_raw_chunk(c, 1, word="cat", simplify=s, scanner=False),
            "scanner": lambda c, s: parse_raw_chunk(c, 1, word="cat", simplify=s, scanner=True),
        }
        for f in paths.values():  # compile / load every kernel before timing
            f(chunks[0][:200_000].rsplit(b"\n", 1)[0] + b"\n", False)
            f(chunks[0][:200_000].rsplit(b"\n", 1)[0] + b"\n", True)
        results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
        for rep in range(args.repeat):
            for simplify in (False, True):
                for name, f in paths.items():
                    w0, c0 = wall_and_cpu()
                    rows = sum(f(c, simplify).table.num_rows for c in chunks)
                    w1, c1 = wall_and_cpu()
                    assert rows == n, (name, rows, n)
                    results.setdefault((name, simplify), []).append((w1 - w0, c1 - c0))
            print(f"  run {rep + 1}/{args.repeat} done", flush=True)
    print(f"\n{n:,} real raw drawings ({mb:.1f} MB, {len(chunks)} chunks of <= 4 MiB), {args.repeat} runs each\n")
    out = []
    for simplify in (False, True):
        bw = [w for w, _ in results[("baseline", simplify)]]
        bc = min(c for _, c in results[("baseline", simplify)])
        for name in paths:
            runs = results[(name, simplify)]
            ws = [w for w, _ in runs]
            best = min(runs)
            out.append([
                "raw --simplify" if simplify else "raw (timing kept)", name,
                f"{n / max(ws):,.0f}-{n / min(ws):,.0f}", f"{best[0]:.3f}", f"{best[1]:.3f}",
                f"{min(bw) / max(ws):.1f}-{max(bw) / min(ws):.1f}x",
                f"{bc / min(c for _, c in runs):.1f}x",
            ])
    print(table(["output", "path", "drawings/s (range)", "wall s (best)", "CPU s (best)", "wall vs baseline", "CPU vs baseline"], out))
    if args.fetch:
        _fetch_rows(chunks, n, args.repeat)


def _fetch_rows(chunks: list[bytes], n: int, repeat: int) -> None:
    """fetch() end to end (read, parse, Parquet parts, manifest) of the same drawings as one class file, with
    today's parser patched in as the baseline."""
    import quickdraw.sources.raw as raw_mod
    from quickdraw.pipeline.fetch import FetchOptions, fetch

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "cat.ndjson").write_bytes(b"".join(chunks))
        base = _baseline_module(Path(tmp))
        current = raw_mod.parse_raw_chunk
        results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
        for rep in range(repeat):
            for simplify in (False, True):
                for name, parser in (("baseline", base.parse_raw_chunk), ("scanner", current)):
                    raw_mod.parse_raw_chunk = parser  # fetch imports it from the module at each chunk
                    out = Path(tempfile.mkdtemp(dir=tmp))
                    try:
                        w0, c0 = wall_and_cpu()
                        r = fetch("cat", out, FetchOptions(source=str(src), format="raw", simplify=simplify))
                        w1, c1 = wall_and_cpu()
                    finally:
                        raw_mod.parse_raw_chunk = current
                    assert r.classes[0].accepted == n
                    results.setdefault((name, simplify), []).append((w1 - w0, c1 - c0))
    rows = []
    for simplify in (False, True):
        bw = [w for w, _ in results[("baseline", simplify)]]
        bc = min(c for _, c in results[("baseline", simplify)])
        for name in ("baseline", "scanner"):
            runs = results[(name, simplify)]
            ws = [w for w, _ in runs]
            rows.append(["fetch --format raw" + (" --simplify" if simplify else ""), name,
                         f"{n / max(ws):,.0f}-{n / min(ws):,.0f}", f"{min(ws):.3f}", f"{min(c for _, c in runs):.3f}",
                         f"{min(bw) / max(ws):.1f}-{max(bw) / min(ws):.1f}x", f"{bc / min(c for _, c in runs):.1f}x"])
    print("\nfetch() end to end, one class file\n")
    print(table(["output", "path", "drawings/s (range)", "wall s (best)", "CPU s (best)", "wall vs baseline",
                 "CPU vs baseline"], rows))


if __name__ == "__main__":
    main()
