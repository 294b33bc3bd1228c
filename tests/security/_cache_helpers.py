"""Small caches to attack, and a way to run the real CLI in a child process with a timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes

CLASSES = ("cat", "dog", "apple")
QUICKDRAW = str(Path(sys.executable).with_name("quickdraw"))


def small_cache(tmp: Path, name: str = "mini", seed: int = 1, n: int = 12):
    """A built cache ``tmp/cache/<name>`` (stroke3 + stroke5) from synthetic shards; returns the CacheVersion."""
    strokes = write_synthetic_strokes(tmp / f"strokes-{seed}", CLASSES, n, seed=seed)
    return build_cache(strokes, tmp / "cache", name)


def rewrite_manifest(version_dir: Path, edit) -> None:  # type: ignore[no-untyped-def]
    p = version_dir / "manifest.json"
    m = json.loads(p.read_text())
    edit(m)
    p.write_text(json.dumps(m, indent=2))


def run_cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None, preexec=None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """``quickdraw ARGS`` in a child process (so a hang is a timeout, not a stuck test run)."""
    return subprocess.run([QUICKDRAW, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec)
