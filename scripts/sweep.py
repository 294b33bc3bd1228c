"""The model study (issue 16) as a tracked DVC sweep: arch x hidden x augmentation, then a comparison.

Run from a DVC project whose pipeline has run once (`dvc repro`, results committed), e.g. this repo:

    python scripts/sweep.py queue  [--arch bigru,gru,lstm,bilstm,conv-bigru] [--hidden 64,192] [--aug off,on]
                                   [--layer-norm false] [--set train.epochs=2 ...] [--prefix sw]
    python scripts/sweep.py run    [--jobs 1]          # dvc queue start, then wait until the queue is empty
    python scripts/sweep.py report [--out reports]     # dvc exp show --json -> sweep.md + sweep.png + sweep.json
    python scripts/sweep.py all    [the queue options] # the three in a row (what `make sweep` runs)

`queue` is nothing but ``dvc exp run --queue -n NAME -S train.arch=... -S train.hidden=... -S <aug>`` per
grid point (printed as it goes, so the lines can be copied) and records the names in
``<out>/sweep_queue.json``; `run` is ``dvc queue start -j N`` and polls ``dvc queue status``; each
experiment is then a git ref holding its params, ``eval/metrics.json`` (top-1, top-3, ECE) and
``dvclive/metrics.json`` (``model.n_parameters``, ``speed.train_seq_per_s``, ``speed.wall_seconds``), which
is what `report` reads back from ``dvc exp show --json``. The comparison ranks by test top-1 and draws
accuracy against parameter count and against training wall time.

Augmentation presets: ``off`` (all 0) and ``on`` (scale 0.15, rotation 10 degrees, stroke dropout 0.1,
jitter 1.0), see ``AUGMENT``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
ARCHS = ("bigru", "gru", "lstm", "bilstm", "conv-bigru")
AUGMENT: dict[str, dict[str, float]] = {
    "off": {"aug_scale": 0.0, "aug_rotate": 0.0, "aug_stroke_dropout": 0.0, "aug_jitter": 0.0},
    "on": {"aug_scale": 0.15, "aug_rotate": 10.0, "aug_stroke_dropout": 0.1, "aug_jitter": 1.0},
}
QUEUE_FILE = "sweep_queue.json"


def _env() -> dict[str, str]:
    # dvc's queue worker starts its tasks as a plain `dvc` looked up on PATH (dvc_task), so the venv's bin must be
    # on it even when nothing is activated (make sweep, a fresh shell); without it every task stays "Queued".
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def dvc(*args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the venv's ``dvc`` (beside this Python) in the current directory."""
    cmd = [str(BIN / "dvc"), *args]
    p = subprocess.run(cmd, check=False, text=True, capture_output=capture, env=_env())
    if check and p.returncode != 0:
        text = (p.stderr or p.stdout or "").strip().splitlines() if capture else []
        detail = [ln for ln in text if ln.startswith("ERROR")][:1] or text[-1:]
        sys.exit(f"error: `dvc {' '.join(args)}` failed (exit {p.returncode}){': ' + detail[0] if detail else ''}")
    return p


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def grid(archs: list[str], hiddens: list[int], augs: list[str], layer_norms: list[bool], prefix: str,
         extra: list[str]) -> list[tuple[str, list[str]]]:
    """``(experiment name, [-S overrides])`` for every grid point."""
    out = []
    for arch in archs:
        if arch not in ARCHS:
            sys.exit(f"error: unknown arch {arch!r} (valid: {', '.join(ARCHS)})")
        for hidden in hiddens:
            for aug in augs:
                if aug not in AUGMENT:
                    sys.exit(f"error: unknown augmentation preset {aug!r} (valid: {', '.join(AUGMENT)})")
                for ln in layer_norms:
                    name = f"{prefix}-{arch}-h{hidden}-aug{aug}" + ("-ln" if ln else "")
                    sets = [f"train.arch={arch}", f"train.hidden={hidden}", f"train.layer_norm={str(ln).lower()}"]
                    sets += [f"train.{k}={v}" for k, v in AUGMENT[aug].items()]
                    sets += extra
                    out.append((name, sets))
    return out


def queue(a: argparse.Namespace) -> list[str]:
    """Queue the grid; returns the experiment names."""
    points = grid(_split(a.arch), [int(h) for h in _split(a.hidden)], _split(a.aug),
                  [v.lower() in ("1", "true", "yes") for v in _split(a.layer_norm)], a.prefix, a.set)
    names = []
    for name, sets in points:
        args = ["exp", "run", "--queue", "-n", name]
        for s in sets:
            args += ["-S", s]
        print("dvc " + " ".join(args), flush=True)
        dvc(*args, capture=True)
        names.append(name)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / QUEUE_FILE).write_text(json.dumps({"experiments": names, "grid": {
        "arch": _split(a.arch), "hidden": _split(a.hidden), "aug": _split(a.aug), "layer_norm": _split(a.layer_norm),
        "set": a.set}}, indent=2) + "\n")
    return names


def _status() -> dict[str, int]:
    text = dvc("queue", "status", capture=True).stdout
    counts: dict[str, int] = {}
    for line in text.splitlines():
        m = re.search(r"\b(Queued|Running|Success|Failed)\b", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def run(a: argparse.Namespace) -> None:
    """``dvc queue start -j N`` and wait until nothing is queued or running."""
    print(f"dvc queue start -j {a.jobs}", flush=True)
    # Not captured: the detached workers inherit the pipes, and reading them would wait for the workers to exit.
    p = subprocess.run([str(BIN / "dvc"), "queue", "start", "-j", str(a.jobs)], env=_env(), text=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if p.returncode != 0:
        sys.exit(f"error: `dvc queue start -j {a.jobs}` failed (exit {p.returncode})")
    t0, last = time.monotonic(), None
    while True:
        counts = _status()
        if counts != last:
            print(f"  [{time.monotonic() - t0:6.0f}s] {counts}", flush=True)
            last = counts
        if not counts.get("Queued") and not counts.get("Running"):
            break
        if counts.get("Queued") and not counts.get("Running") and time.monotonic() - t0 > a.stall:
            dvc("queue", "stop", capture=True, check=False)
            sys.exit(f"error: nothing started running in {a.stall:.0f}s (`dvc queue status` shows no worker?); "
                     "see `dvc queue logs NAME`")
        time.sleep(a.poll)
    # The workers stay up for a while after the queue empties; stop them so nothing lingers.
    dvc("queue", "stop", capture=True, check=False)
    if counts.get("Failed"):
        print(f"warning: {counts['Failed']} experiment(s) failed; `dvc queue logs NAME` shows why", file=sys.stderr)


def _rows(shown: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``dvc exp show --json`` -> {experiment name: {"params": train params, "eval": ..., "live": ...}}."""
    rows: dict[str, dict[str, Any]] = {}

    def take(name: str, data: dict[str, Any]) -> None:
        metrics = data.get("metrics") or {}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        rows[name] = {"params": params.get("train") or {},
                      "eval": (metrics.get("eval/metrics.json") or {}).get("data") or {},
                      "live": (metrics.get("dvclive/metrics.json") or {}).get("data") or {}}

    for r in shown:
        for e in r.get("experiments") or []:
            for rev in e.get("revs") or []:
                if rev.get("name"):
                    take(rev["name"], rev.get("data") or {})
    return rows


def collect(names: list[str] | None) -> list[dict[str, Any]]:
    """One flat record per finished experiment (all experiments of the sweep's names, or all with metrics)."""
    shown = json.loads(dvc("exp", "show", "--json", capture=True).stdout)
    rows = _rows(shown)
    out = []
    for name, r in rows.items():
        if names is not None and name not in names:
            continue
        ev, live, p = r["eval"], r["live"], r["params"]
        if not ev or "top1" not in ev:
            continue
        aug = "on" if any(float(p.get(k) or 0) for k in AUGMENT["on"]) else "off"
        out.append({
            "name": name, "arch": p.get("arch", "bigru"), "hidden": p.get("hidden"), "layers": p.get("layers"),
            "layer_norm": bool(p.get("layer_norm", False)), "aug": aug,
            "top1": ev["top1"], "top3": ev["top3"], "ece": ev.get("ece"), "n_test": ev.get("n"),
            "n_parameters": (live.get("model") or {}).get("n_parameters"),
            "train_seq_per_s": (live.get("speed") or {}).get("train_seq_per_s"),
            "wall_seconds": (live.get("speed") or {}).get("wall_seconds"),
            "best_epoch": (live.get("best") or {}).get("epoch"),
        })
    out.sort(key=lambda r: (-r["top1"], -r["top3"], r["name"]))
    return out


def markdown(records: list[dict[str, Any]]) -> str:
    """The comparison table, best top-1 first."""
    head = ("| # | experiment | arch | hidden | LN | aug | top-1 | top-3 | ECE | parameters | train seq/s | "
            "train wall s |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for i, r in enumerate(records, 1):
        def num(v: Any, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)
        lines.append(f"| {i} | {r['name']} | {r['arch']} | {r['hidden']} | {'yes' if r['layer_norm'] else 'no'} | "
                     f"{r['aug']} | {100 * r['top1']:.1f}% | {100 * r['top3']:.1f}% | {num(r['ece'], '.3f')} | "
                     f"{num(r['n_parameters'], ',')} | {num(r['train_seq_per_s'], '.0f')} | "
                     f"{num(r['wall_seconds'], '.0f')} |")
    return "\n".join(lines) + "\n"


def figure(records: list[dict[str, Any]], path: Path) -> None:
    """One PNG, two panels: test top-1 against parameter count and against training wall time."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.ERROR)  # no font-fallback warnings on a bare machine
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = dict(zip(ARCHS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for r in records:
        style = {"color": colours.get(r["arch"], "k"), "marker": "o" if r["aug"] == "off" else "^",
                 "markersize": 5 + (r["hidden"] or 0) / 48, "linestyle": "none",
                 "markerfacecolor": colours.get(r["arch"], "k") if not r["layer_norm"] else "white"}
        if r["n_parameters"]:
            axes[0].plot(r["n_parameters"], 100 * r["top1"], **style)
        if r["wall_seconds"]:
            axes[1].plot(r["wall_seconds"], 100 * r["top1"], **style)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("parameters")
    axes[1].set_xlabel("training wall time (s)")
    axes[0].set_ylabel("test top-1 (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="none", label=a) for a, c in colours.items()
               if any(r["arch"] == a for r in records)]
    handles += [plt.Line2D([], [], color="grey", marker=m, linestyle="none", label=f"aug {k}")
                for k, m in (("off", "o"), ("on", "^"))]
    axes[1].legend(handles=handles, fontsize=8, loc="lower right")
    fig.suptitle("Model study: accuracy against size and training time (marker size ~ hidden)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(a: argparse.Namespace) -> list[dict[str, Any]]:
    """Write ``sweep.md``, ``sweep.png`` and ``sweep.json`` under ``--out``; returns the records."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    qf = out / QUEUE_FILE
    names = json.loads(qf.read_text())["experiments"] if qf.exists() and not a.all_experiments else None
    records = collect(names)
    if not records:
        sys.exit("error: no finished experiment with eval/metrics.json in `dvc exp show` (run the sweep first)")
    (out / "sweep.json").write_text(json.dumps(records, indent=2) + "\n")
    (out / "sweep.md").write_text(markdown(records))
    figure(records, out / "sweep.png")
    print(markdown(records))
    print(f"wrote {out / 'sweep.md'}, {out / 'sweep.png'}, {out / 'sweep.json'}")
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("command", choices=("queue", "run", "report", "all"))
    ap.add_argument("--arch", default=",".join(ARCHS))
    ap.add_argument("--hidden", default="64,192")
    ap.add_argument("--aug", default="off,on")
    ap.add_argument("--layer-norm", default="false", help="comma list of true/false")
    ap.add_argument("--set", action="append", default=[], help="an extra -S for every experiment (repeatable)")
    ap.add_argument("--prefix", default="sw")
    ap.add_argument("--jobs", type=int, default=1, help="dvc queue workers")
    ap.add_argument("--poll", type=float, default=5.0)
    ap.add_argument("--stall", type=float, default=300.0, help="give up when nothing runs for this many seconds")
    ap.add_argument("--out", default="reports")
    ap.add_argument("--all-experiments", action="store_true", help="report every experiment, not just this sweep's")
    a = ap.parse_args()
    if a.command in ("queue", "all"):
        queue(a)
    if a.command in ("run", "all"):
        run(a)
    if a.command in ("report", "all"):
        report(a)


if __name__ == "__main__":
    main()
