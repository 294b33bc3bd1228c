"""`torchrun --standalone --nproc_per_node=2 -m quickdraw train` on CPU (gloo) over a tiny cache.

With dropout 0 the two ranks together take the very optimizer steps of one process with the same global
batch, so the weights after k steps agree to 1e-5; validation is reduced across ranks (same numbers as one
process); only rank 0 writes checkpoints and dvclive files and prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from quickdraw.cache.build import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from tests.emulator import REPO

pytestmark = pytest.mark.slow

TORCHRUN = Path(sys.executable).with_name("torchrun")
# 6 optimizer steps of a global batch of 24 (12 a rank); dropout 0 so both runs compute the same function.
SETS = ["train.hidden=12", "train.layers=2", "train.dropout=0", "train.epochs=2", "train.max_steps_per_epoch=3",
        "train.batch_size=24", "train.min_steps_per_epoch=1", "train.warmup_steps=2", "train.min_steps=0",
        "train.num_threads=1", "train.seed=3"]

# Runs the real CLI under torchrun with save_checkpoint and dvclive's Live wrapped, so the test sees which
# rank wrote what (one JSON file per rank).
RECORDER = '''
import json, os, sys
import dvclive
import quickdraw.pipeline.train as t
rank = int(os.environ["RANK"])
calls = {"rank": rank, "checkpoints": [], "live_dirs": [], "world_size": int(os.environ["WORLD_SIZE"])}
save = t.save_checkpoint
def recording_save(path, model, **info):
    calls["checkpoints"].append(str(path))
    return save(path, model, **info)
t.save_checkpoint = recording_save
class RecordingLive(dvclive.Live):
    def __init__(self, *a, **k):
        calls["live_dirs"].append(k.get("dir"))
        super().__init__(*a, **k)
dvclive.Live = RecordingLive
from quickdraw.cli.app import main
try:
    sys.argv = ["quickdraw", *sys.argv[1:]]
    main()
finally:
    with open(os.environ["RECORD_DIR"] + f"/rank{rank}.json", "w") as f:
        json.dump(calls, f)
'''


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                              "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"), DVC_NO_ANALYTICS="1",
               QUICKDRAW_CACHE=str(tmp / "user-cache"))
    return env


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TORCHRUN.exists():
        pytest.skip(f"no torchrun beside {sys.executable}")
    base = tmp_path_factory.mktemp("ddp")
    strokes = write_synthetic_strokes(base / "strokes", ["cat", "dog", "apple"], 40, seed=5,
                                      formats=("stroke3",), max_len=60)
    build_cache(strokes, base / "cache", "tiny3", formats=("stroke3",))
    return base


def _train(cmd_head: list[str], base: Path, name: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    out, live = base / name / "models", base / name / "dvclive"
    cmd = [*cmd_head, "train", "--cache", "tiny3", "--cache-root", str(base / "cache"), "--out", str(out),
           "--live-dir", str(live), "--json"]
    for s in SETS:
        cmd += ["--set", s]
    env = {**_env(base), **(extra_env or {})}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=base)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    # only rank 0 prints: stdout is exactly one JSON document
    return {"result": json.loads(p.stdout), "out": out, "live": live, "stderr": p.stderr}


def _state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    doc = torch.load(path, map_location="cpu", weights_only=True)
    return doc["model_state"], doc


def test_two_ranks_equal_one_process_and_one_writer(tiny_cache: Path) -> None:
    base = tiny_cache
    single = _train([sys.executable, "-m", "quickdraw"], base, "single")
    two = _train([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "quickdraw"], base, "ddp2")

    s1, doc1 = _state(single["out"] / "last.pt")
    s2, doc2 = _state(two["out"] / "last.pt")
    assert doc1["world_size"] == 1 and doc2["world_size"] == 2
    assert doc2["epoch"] == doc1["epoch"] == 2
    assert set(s1) == set(s2)
    for k in s1:
        assert torch.allclose(s1[k], s2[k], atol=1e-5, rtol=0), (k, float((s1[k] - s2[k]).abs().max()))
    # the training really moved the weights (equality of two untouched inits would prove nothing)
    init = torch.nn.GRU(3, 12, batch_first=True).weight_ih_l0
    assert not torch.allclose(s2["rnn.fwd.0.weight_ih_l0"], init, atol=1e-3)

    # validation is reduced over both ranks: the same metrics as one process over the whole val split
    h1, h2 = single["result"]["history"], two["result"]["history"]
    assert len(h1) == len(h2) == 2
    for r1, r2 in zip(h1, h2, strict=True):
        for key in ("val_loss", "val_top1", "val_top3", "train_loss"):
            assert r1[key] == pytest.approx(r2[key], abs=1e-5), key
    live = json.loads((two["live"] / "metrics.json").read_text())
    assert live["speed"]["world_size"] == 2 and live["model"]["n_parameters"] > 0


def test_only_rank_zero_writes(tiny_cache: Path, tmp_path: Path) -> None:
    base = tiny_cache
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    rec = tmp_path / "rec"
    rec.mkdir()
    run = _train([str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script)], base, "rec",
                 {"RECORD_DIR": str(rec)})
    calls = {r: json.loads((rec / f"rank{r}.json").read_text()) for r in (0, 1)}
    assert calls[0]["world_size"] == calls[1]["world_size"] == 2
    assert calls[0]["checkpoints"] and all(Path(c).parent == run["out"] for c in calls[0]["checkpoints"])
    assert calls[0]["live_dirs"] == [str(run["live"])]
    assert calls[1]["checkpoints"] == [] and calls[1]["live_dirs"] == []
    # no stray files from a second writer (temp files are named per pid)
    assert sorted(p.name for p in run["out"].iterdir() if not p.name.startswith(".quickdraw")) == ["best.pt", "last.pt"]


def test_refused_output_fails_every_rank(tiny_cache: Path, tmp_path: Path) -> None:
    """Rank 0 refusing a user's folder must end the whole run with its one-line error, not hang rank 1."""
    base = tiny_cache
    user = base / "user-folder" / "models"
    user.mkdir(parents=True)
    (user / "notes.txt").write_text("mine")
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "quickdraw", "train", "--cache", "tiny3",
           "--cache-root", str(base / "cache"), "--out", str(user), "--live-dir", str(tmp_path / "live"), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(base), cwd=base)
    assert p.returncode != 0
    assert (user / "notes.txt").read_text() == "mine" and sorted(x.name for x in user.iterdir()) == ["notes.txt"]
    # rank 0's one-line error names the folder; rank 1 stops too (torchrun then reports both exit codes)
    assert any(line.startswith("error:") and str(user) in line for line in p.stderr.splitlines()), p.stderr[-3000:]


def test_python_m_quickdraw_help() -> None:
    p = subprocess.run([sys.executable, "-m", "quickdraw", "--help"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert p.returncode == 0 and "train" in p.stdout
