"""SIGKILL fetch, prepare and cache build at seeded random moments; a re-run ends byte-identical to an
uninterrupted run, and between the two no reader (``quickdraw.load``, ``stats``, the next stage) ever sees a
half-written class, shard set or cache version.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import quickdraw
from quickdraw.cache import gc, list_versions, verify
from quickdraw.errors import QuickDrawError
from quickdraw.pipeline.stats import compute_stats
from quickdraw.sources.parquet import fetched_classes
from tests.integration.test_fetch import synthetic_ndjson

SEEDS = [0, 1, 2, 3, 4]
# stage -> outcome per seed: 'before' (killed before any output), 'mid' (partial output), 'done' (finished first)
OUTCOMES: dict[str, list[str]] = {}
WORDS = ("cat", "dog", "apple")

FETCH = ("import sys; from quickdraw.pipeline.fetch import fetch, FetchOptions\n"
         "fetch(['cat','dog','apple'], sys.argv[2], FetchOptions(source=sys.argv[1], part_rows=400, chunk_bytes=32768), concurrency=2)")
PREPARE = "import sys; from quickdraw.pipeline.prepare import prepare; prepare(sys.argv[1], sys.argv[2])"
BUILD = "import sys; from quickdraw.cache import build_cache; build_cache(sys.argv[1], sys.argv[2], 'mini')"


def dir_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def run(code: str, *args: Path) -> float:
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, timeout=120)
    return time.monotonic() - t


def run_and_kill(code: str, args: tuple[Path, ...], at: float) -> bool:
    """Start the stage, SIGKILL it ``at`` seconds later; True if it was still running (really interrupted)."""
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)])
    try:
        proc.wait(timeout=at)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("clean")
    src = d / "src"
    src.mkdir()
    for i, w in enumerate(WORDS):
        (src / f"{w}.ndjson").write_bytes(synthetic_ndjson(6000, word=w, seed=i))
    times = {"fetch": run(FETCH, src, d / "raw"), "prepare": run(PREPARE, d / "raw", d / "strokes"),
             "build": run(BUILD, d / "strokes", d / "cache")}
    return {"src": src, "raw": d / "raw", "strokes": d / "strokes", "cache": d / "cache", "times": times}


def kill_point(seed: int, stage: str, clean: dict) -> float:
    # Uniform over the clean run's wall time (interpreter start-up included, so some kills land before
    # any output exists, most during the writes).
    return random.Random(f"{stage}-{seed}").uniform(0.2, clean["times"][stage])  # type: ignore[index]


@pytest.mark.parametrize("seed", SEEDS)
def test_fetch_killed_then_resumed(clean: dict, tmp_path: Path, seed: int) -> None:
    out = tmp_path / "raw"
    killed = run_and_kill(FETCH, (clean["src"], out), kill_point(seed, "fetch", clean))
    want = dir_bytes(clean["raw"])
    partial = out.exists() and any(out.rglob("part-*"))
    OUTCOMES.setdefault("fetch", []).append("done" if not killed else "mid" if partial else "before")
    if out.exists():
        # Every class that looks complete is complete and exactly right.
        for w in fetched_classes(out):
            assert {k: v for k, v in dir_bytes(out).items() if k.startswith(f"{w}/")} == \
                   {k: v for k, v in want.items() if k.startswith(f"{w}/")}
    run(FETCH, clean["src"], out)
    assert dir_bytes(out) == want


@pytest.mark.parametrize("seed", SEEDS)
def test_prepare_killed_then_rerun(clean: dict, tmp_path: Path, seed: int) -> None:
    out = tmp_path / "strokes"
    killed = run_and_kill(PREPARE, (clean["raw"], out), kill_point(seed, "prepare", clean))
    partial = out.exists() and any(p.is_file() for p in out.rglob("*"))
    OUTCOMES.setdefault("prepare", []).append("done" if not killed else "mid" if partial else "before")
    if (out / "_manifest.json").exists():
        assert dir_bytes(out) == dir_bytes(clean["strokes"])
    else:
        with pytest.raises(QuickDrawError):
            compute_stats(out)
        with pytest.raises(QuickDrawError):
            quickdraw.cache.build_cache(out, tmp_path / "c", "mini")
    run(PREPARE, clean["raw"], out)
    assert dir_bytes(out) == dir_bytes(clean["strokes"])


@pytest.mark.parametrize("seed", SEEDS)
def test_cache_build_killed_then_rebuilt(clean: dict, tmp_path: Path, seed: int) -> None:
    root = tmp_path / "cache"
    killed = run_and_kill(BUILD, (clean["strokes"], root), kill_point(seed, "build", clean))
    partial = (root / "mini").exists() and any(p.is_file() and ".locks" not in p.parts for p in (root / "mini").rglob("*"))
    OUTCOMES.setdefault("build", []).append("done" if not killed else "mid" if partial else "before")
    want = list_versions("mini", clean["cache"])[0]
    got = list_versions("mini", root)
    if got:
        assert [v.version for v in got] == [want.version] and verify(got[0]).ok
        assert len(quickdraw.load("mini", root=root)) == len(quickdraw.load("mini", root=clean["cache"]))
    else:
        with pytest.raises(QuickDrawError):
            quickdraw.load("mini", root=root)
        with pytest.raises(QuickDrawError):
            compute_stats(str(root / "mini"))
    run(BUILD, clean["strokes"], root)
    assert dir_bytes(root / "mini" / want.version) == dir_bytes(want.path)
    gc(root)
    assert not list((root / "mini").glob(".tmp-*"))
    assert [v.version for v in list_versions("mini", root)] == [want.version]


def test_kill_points_landed_mid_write() -> None:
    """The seeds are only worth something if some kills hit a stage while it was writing."""
    print("kill outcomes:", OUTCOMES)
    for stage in ("fetch", "prepare", "build"):
        if len(OUTCOMES.get(stage, [])) == len(SEEDS):
            assert "mid" in OUTCOMES[stage], (stage, OUTCOMES[stage])
