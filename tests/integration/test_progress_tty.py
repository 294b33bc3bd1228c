"""Progress bars on a real terminal: fetch and prepare run under a pseudo-terminal (stderr a TTY, so rich
draws its bars) and must finish cleanly. The non-TTY runs of every other test never build the bars, so a
wiring error in them (e.g. a console rich cannot enter) would show only to a user at a terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from tests.integration.test_fetch import synthetic_ndjson


def _run_on_tty(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``python -m quickdraw.cli.app argv`` with stdout and stderr on a pseudo-terminal; (exit code, output)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    p = subprocess.Popen([sys.executable, "-m", "quickdraw.cli.app", *argv], stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            p.kill()
            raise AssertionError(f"no output for 120 s from {argv}: {out[-2000:]!r}")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(timeout=60), out.decode(errors="replace")


def test_fetch_and_prepare_draw_progress_bars_on_a_terminal(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(synthetic_ndjson(3000))
    code, out = _run_on_tty(["fetch", "--classes", "cat", "--source", str(src), "--out", "raw"], tmp_path)
    assert code == 0, out
    assert "━" in out and "3,000 drawings" in out and "Traceback" not in out, out  # the bar was drawn
    code, out = _run_on_tty(["prepare", "--in", "raw", "--out", "strokes"], tmp_path)
    assert code == 0 and "Traceback" not in out, out
    assert (tmp_path / "strokes").is_dir()
