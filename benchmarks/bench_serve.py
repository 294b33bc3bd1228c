"""``quickdraw serve``, measured: ``POST /api/predict`` latency (p50/p95, wall and CPU) for typical and maximal
drawings, and requests/s with several concurrent clients.

    python benchmarks/bench_serve.py [--repeat 3] [--requests 200] [--classes 345] [--json FILE]

Set-up (all in a temp dir): a checkpoint of the default model size (params.yaml's GRU: hidden 192, 2 layers) with
``--classes`` classes and random weights (latency depends on the sizes, not on what was learned), written by
``quickdraw.models.save_checkpoint``; then the real ``quickdraw serve`` (uvicorn, a subprocess, default
``--threads 2``) on a free loopback port. Clients are ``httpx2`` clients with keep-alive connections in this
process, one thread each.

Drawings (raw, as the page sends them: float x, y and t in ms; made by a seeded random walk):

* ``typical``: 160 points in 4 strokes (the median raw drawing of the shared sample: 160 points, 4 strokes);
* ``maximal``: 10,000 points in 500 strokes, the default ``Limits`` (simplified and then truncated to the
  checkpoint's max_len=250 steps, as prepare does);
* ``simplified``: a 0..255 integer drawing of 60 points (what ``curl`` users of the simplified files send).

Per request: the client's wall time (request out to JSON parsed), and the server's own wall and thread-CPU time
of the prediction (parse, check, simplify, encode, model) from the ``Server-Timing`` header; p50/p95 over
``--requests`` sequential requests after 20 warm-up requests. The server process's CPU (utime+stime from
/proc) over the run, divided by the requests, gives the whole-process CPU per request (HTTP, JSON, event loop
included). Baseline, same run: ``predict_records`` called directly in this process on the same drawing (no
HTTP): the rest is the web stack's cost. Concurrency: 1, 2, 4 and 8 clients, each sending the typical drawing
back to back for ``--seconds``; requests/s and client p50/p95.

Target: typical p95 (client wall, one client) under 100 ms, the order of a delay a user notices; exit 1 if missed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, wall_and_cpu  # noqa: E402

TARGET_P95_MS = 100.0


def raw_drawing(points: int, strokes: int, seed: int) -> list[list[list[float]]]:
    """A random-walk raw drawing: float screen coordinates in a ~500 px box, t rising ~8 ms a point."""
    rng = np.random.default_rng(seed)
    per = np.full(strokes, points // strokes)
    per[: points % strokes] += 1
    out, t = [], 0
    pos = rng.uniform(100, 400, 2)
    for n in per:
        steps = rng.normal(0, 6, (int(n), 2))
        pts = np.clip(pos + np.cumsum(steps, axis=0), 0, 600)
        pos = pts[-1] + rng.normal(0, 40, 2)
        ts = t + np.cumsum(rng.integers(4, 12, int(n)))
        t = int(ts[-1]) + 200
        out.append([[float(v) for v in pts[:, 0]], [float(v) for v in pts[:, 1]], [int(v) for v in ts]])
    return out


def simplified_drawing(points: int, seed: int) -> list[list[list[int]]]:
    rng = np.random.default_rng(seed)
    xs = np.clip(np.cumsum(rng.integers(-12, 13, points)) + 128, 0, 255)
    ys = np.clip(np.cumsum(rng.integers(-12, 13, points)) + 128, 0, 255)
    half = points // 2
    return [[xs[:half].tolist(), ys[:half].tolist()], [xs[half:].tolist(), ys[half:].tolist()]]


def make_checkpoint(path: Path, n_classes: int) -> None:
    import torch

    from quickdraw.models import GRUClassifier, save_checkpoint
    from quickdraw.models.gru import ModelConfig

    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(n_classes=n_classes, hidden=192, layers=2, xy_scale=30.0))
    classes = [f"class {i:03d}" for i in range(n_classes)]
    save_checkpoint(path, model, classes=classes, epoch=1,
                    cache={"name": "bench", "version": "0" * 16, "min_len": 6, "max_len": 250, "on_long": "truncate"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def start_server(ckpt: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx2

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "quickdraw", "serve", "--checkpoint", str(ckpt), "--port",
                             str(port), "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx2.get(url + "/api/health", timeout=2).status_code == 200:
                return proc, url
        except httpx2.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start in 120 s")


def latency(url: str, pid: int, body: bytes, n: int) -> dict[str, Any]:
    import httpx2

    wall, swall, scpu = [], [], []
    with httpx2.Client(base_url=url, headers={"content-type": "application/json"}, timeout=60) as c:
        for _ in range(20):
            c.post("/api/predict", content=body).raise_for_status()
        cpu0 = proc_cpu(pid)
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.post("/api/predict", content=body)
            r.raise_for_status()
            r.json()
            wall.append((time.perf_counter() - t0) * 1e3)
            timing = dict(p.strip().split(";dur=") for p in r.headers["server-timing"].split(","))
            swall.append(float(timing["predict"]))
            scpu.append(float(timing["cpu"]))
        proc_ms = (proc_cpu(pid) - cpu0) / n * 1e3
    return {"p50": pct(wall, 50), "p95": pct(wall, 95), "server_p50": pct(swall, 50), "server_p95": pct(swall, 95),
            "cpu_p50": pct(scpu, 50), "cpu_p95": pct(scpu, 95), "proc_cpu_ms": proc_ms}


def in_process(ckpt: Path, drawing: Any, n: int) -> dict[str, Any]:
    """The baseline: predict_records on one drawing, in this process (one torch thread, like the server)."""
    import torch

    from quickdraw.models import load_checkpoint
    from quickdraw.pipeline.predict import predict_records

    torch.set_num_threads(1)
    model, info = load_checkpoint(ckpt)
    walls, cpus = [], []
    for i in range(n + 20):
        w0, c0 = wall_and_cpu()
        predict_records(model, info, [(1, {"drawing": drawing})], top_k=3)
        w1, c1 = wall_and_cpu()
        if i >= 20:
            walls.append((w1 - w0) * 1e3)
            cpus.append((c1 - c0) * 1e3)
    return {"p50": pct(walls, 50), "p95": pct(walls, 95), "cpu_p50": pct(cpus, 50), "cpu_p95": pct(cpus, 95)}


def throughput(url: str, pid: int, body: bytes, clients: int, seconds: float) -> dict[str, Any]:
    import httpx2

    lat: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds
    errors: list[str] = []

    def client(k: int) -> None:
        with httpx2.Client(base_url=url, headers={"content-type": "application/json"}, timeout=60) as c:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = c.post("/api/predict", content=body)
                if r.status_code != 200:
                    errors.append(r.text[:200])
                    return
                lat[k].append((time.perf_counter() - t0) * 1e3)

    cpu0, t0 = proc_cpu(pid), time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"requests failed: {errors[0]}")
    allv = [v for ls in lat for v in ls]
    return {"rps": len(allv) / elapsed, "p50": pct(allv, 50), "p95": pct(allv, 95),
            "proc_cpu_ms": (proc_cpu(pid) - cpu0) / len(allv) * 1e3}


def rng_fmt(values: list[float], digits: int = 1) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if f"{lo:.{digits}f}" == f"{hi:.{digits}f}" else f"{lo:.{digits}f}-{hi:.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="server runs (each a fresh process); ranges are over them")
    ap.add_argument("--requests", type=int, default=200, help="sequential requests per latency row")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each concurrency row")
    ap.add_argument("--classes", type=int, default=345, help="classes of the benchmark checkpoint")
    ap.add_argument("--threads", type=int, default=2, help="the server's --threads")
    ap.add_argument("--json", type=Path, help="also write all results here")
    a = ap.parse_args()

    drawings = {
        "typical raw (160 pts, 4 strokes)": raw_drawing(160, 4, 1),
        "maximal raw (10,000 pts, 500 strokes)": raw_drawing(10_000, 500, 2),
        "simplified (60 pts)": simplified_drawing(60, 3),
    }
    bodies = {k: json.dumps({"drawing": d}).encode() for k, d in drawings.items()}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        ckpt = Path(tmp) / "best.pt"
        make_checkpoint(ckpt, a.classes)
        for rep in range(a.repeat):
            run: dict[str, Any] = {"latency": {}, "baseline": {}, "concurrency": {}}
            proc, url = start_server(ckpt, a.threads)
            try:
                for name, body in bodies.items():
                    run["latency"][name] = latency(url, proc.pid, body, a.requests)
                    print(f"  run {rep + 1}/{a.repeat} {name}: {run['latency'][name]}", flush=True)
                for clients in (1, 2, 4, 8):
                    run["concurrency"][clients] = throughput(url, proc.pid, bodies[next(iter(bodies))], clients,
                                                             a.seconds)
                    print(f"  run {rep + 1}/{a.repeat} {clients} clients: {run['concurrency'][clients]}", flush=True)
            finally:
                proc.terminate()
                proc.wait(30)
            for name, d in drawings.items():
                run["baseline"][name] = in_process(ckpt, d, a.requests)
            runs.append(run)

    print(f"\nPOST /api/predict latency, ms ({a.classes} classes, GRU 192x2, server --threads {a.threads}, "
          f"{a.requests} requests after 20 warm-up, ranges over {a.repeat} server runs)\n")
    rows = []
    for name in drawings:
        L = [r["latency"][name] for r in runs]
        B = [r["baseline"][name] for r in runs]
        rows.append([name, rng_fmt([x["p50"] for x in L]), rng_fmt([x["p95"] for x in L]),
                     rng_fmt([x["server_p50"] for x in L]), rng_fmt([x["cpu_p50"] for x in L]),
                     rng_fmt([x["cpu_p95"] for x in L]), rng_fmt([x["proc_cpu_ms"] for x in L]),
                     rng_fmt([x["p50"] for x in B]), rng_fmt([x["cpu_p50"] for x in B])])
    print(table(["drawing", "client p50", "client p95", "predict p50", "predict CPU p50", "predict CPU p95",
                 "server CPU/req", "baseline p50", "baseline CPU p50"], rows))
    print(f"\nConcurrent clients, typical drawing, {a.seconds:g} s each\n")
    crow = []
    for clients in (1, 2, 4, 8):
        C = [r["concurrency"][clients] for r in runs]
        crow.append([str(clients), rng_fmt([x["rps"] for x in C], 0), rng_fmt([x["p50"] for x in C]),
                     rng_fmt([x["p95"] for x in C]), rng_fmt([x["proc_cpu_ms"] for x in C])])
    print(table(["clients", "requests/s", "p50 ms", "p95 ms", "server CPU ms/req"], crow))
    if a.json:
        a.json.write_text(json.dumps(runs, indent=2))
    worst = max(r["latency"][next(iter(drawings))]["p95"] for r in runs)
    ok = worst < TARGET_P95_MS
    print(f"\ntarget: typical p95 < {TARGET_P95_MS:g} ms (one client): {'met' if ok else 'MISSED'} "
          f"(worst run {worst:.1f} ms); load average {os.getloadavg()[0]:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
