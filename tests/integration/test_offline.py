"""Fail fast and say what to do: no network, a refused port, 403/404, a server that ignores Range, a local file
truncated while read, bad environment knobs, and Ctrl-C while a server stalls.

Every case runs the real thing: the ``quickdraw`` CLI as a subprocess (with its own interpreter, signals and
exit codes), gcsfs against the GCS emulator or a real socket, fsspec's HTTP filesystem against a real
``http.server``. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.errors import ConfigError
from quickdraw.pipeline.fetch import FetchOptions, fetch
from tests.conftest import copy_class_files
from tests.emulator import BUCKET, Emulator
from tests.faultproxy import FaultProxy

SRC = f"gs://{BUCKET}/full/simplified"
QUICKDRAW = [sys.executable, "-m", "quickdraw.cli.app"]
runner = CliRunner()


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this one without quickdraw's knobs (the gcs fixture sets the
    endpoint in os.environ), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUICKDRAW_", "STORAGE_EMULATOR"))}
    env.update(extra)
    env["COLUMNS"] = "80"
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    t = time.monotonic()
    proc = subprocess.run([*QUICKDRAW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def assert_one_clean_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, no traceback, and exactly one ``error:`` line holding every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr[-3000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def dead_port() -> int:
    """A loopback port where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dir_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------- no network
@pytest.mark.parametrize("classes", ["animals10", "all"])
def test_unresolvable_host_fails_once_within_30s(tmp_path: Path, classes: str) -> None:
    # `.invalid` never resolves (RFC 6761): the same as a laptop with no network, without needing one.
    proc, took = run_cli(["fetch", "--classes", classes, "--out", str(tmp_path / "o")],
                         cli_env(QUICKDRAW_GCS_ENDPOINT="http://nonexistent.invalid:4443"))
    line = assert_one_clean_line(proc, "nonexistent.invalid", "does not resolve", f"{SRC}/", "--source",
                                 "fetch.source", "QUICKDRAW_GCS_ENDPOINT")
    assert took <= 30, f"{classes}: {took:.1f} s to fail offline"
    assert line.endswith(")") or "mirror" in line  # the fix is the last thing said, not a stack frame


@pytest.mark.parametrize("scheme", ["gs", "http"])
def test_refused_port_fails_at_once(tmp_path: Path, scheme: str) -> None:
    port = dead_port()
    if scheme == "gs":
        args, env = [], cli_env(QUICKDRAW_GCS_ENDPOINT=f"http://127.0.0.1:{port}")
    else:
        args, env = ["--source", f"http://127.0.0.1:{port}/full/simplified"], cli_env()
    proc, took = run_cli(["fetch", "--classes", "animals10", "--out", str(tmp_path / "o"), *args], env)
    assert_one_clean_line(proc, f"127.0.0.1:{port}", "connection refused", ".ndjson", "--source")
    assert took <= 15


def test_library_reports_the_source_wide_error_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_GCS_ENDPOINT", "http://nonexistent.invalid:4443")
    t = time.monotonic()
    res = fetch("all", tmp_path / "o", FetchOptions(source=SRC), concurrency=4)
    assert time.monotonic() - t < 15
    assert res.error is not None and res.error.source_wide and "does not resolve" in str(res.error)
    statuses = [c.status for c in res.classes]
    assert statuses.count("failed") == 1, "the error was repeated for other classes"
    assert statuses.count("not_attempted") >= 345 - 4 and set(statuses) <= {"failed", "stopped", "not_attempted"}


# ------------------------------------------------------------------------------------------ 403 and 404
def test_forbidden_bucket_stops_every_class(gcs: Emulator, tmp_path: Path) -> None:
    with FaultProxy(gcs.url) as proxy:
        proxy.add("status", match="any", times=None, status=403)
        proc, took = run_cli(["fetch", "--classes", "animals10", "--out", str(tmp_path / "o"), "--source", SRC,
                              "--json"], cli_env(QUICKDRAW_GCS_ENDPOINT=proxy.url))
    assert_one_clean_line(proc, "access denied (HTTP 403)", f"{SRC}/", "QUICKDRAW_GCS_TOKEN")
    doc = json.loads(proc.stdout)  # --json still prints its one document
    assert doc["error"] and doc["totals"]["failed"] == 1 and doc["totals"]["not_attempted"] >= 2
    # gcsfs's info makes up to 3 requests (object, then listings); 4 classes at once at most: no retries.
    assert len(proxy.log) <= 3 * 4, "403 was retried"
    assert took <= 15


def test_forbidden_over_http_is_not_reported_as_missing(tmp_path: Path, shared_data: Path) -> None:
    # fsspec's HTTP `info` turns every failure into FileNotFoundError; the cause chain still says 403.
    with serve(shared_data.parent, forbid=True) as (base, _):
        proc, _ = run_cli(["fetch", "--classes", "cat,dog", "--out", str(tmp_path / "o"), "--source",
                           f"{base}/quickdraw_dataset/full/simplified"], cli_env())
    assert_one_clean_line(proc, "access denied (HTTP 403)", "/quickdraw_dataset/full/simplified/")
    assert "not found" not in proc.stderr


def test_missing_class_fails_alone_others_complete(bucket_factory: Any, shared_data: Path, tmp_path: Path) -> None:
    cat = (shared_data / "full" / "simplified" / "cat.ndjson").read_bytes()
    emu = bucket_factory({"full/simplified/cat.ndjson": cat, "full/simplified/cow.ndjson": cat.replace(b'"cat"', b'"cow"')})
    proc, took = run_cli(["fetch", "--classes", "cat,dog,cow", "--out", str(tmp_path / "o"), "--source", SRC],
                         cli_env(QUICKDRAW_GCS_ENDPOINT=emu.url))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and took <= 20
    flat = " ".join(proc.stderr.split())
    assert "failed: dog: source object not found: gs://quickdraw_dataset/full/simplified/dog.ndjson" in flat
    assert "is --source the folder" in flat  # and what to check
    assert (tmp_path / "o" / "cat" / "_manifest.json").is_file() and (tmp_path / "o" / "cow" / "_manifest.json").is_file()


# ------------------------------------------------------------------------ one line per retry, no traceback
def test_transient_stall_is_one_warning_per_retry(gcs: Emulator, tmp_path: Path) -> None:
    with FaultProxy(gcs.url) as proxy:
        proxy.add("stall", path="cat.ndjson", times=2, delay=5)
        proc, _ = run_cli(["fetch", "--classes", "cat", "--out", str(tmp_path / "o"), "--source", SRC],
                          cli_env(QUICKDRAW_GCS_ENDPOINT=proxy.url, QUICKDRAW_REQUEST_TIMEOUT="0.5",
                                  QUICKDRAW_RETRY_BASE="0.05"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    retries = [ln for ln in proc.stderr.splitlines() if "retry" in ln]
    assert len(retries) == 2 and all(ln.startswith("WARNING ") and "cat.ndjson" in ln for ln in retries), proc.stderr


def test_library_error_logs_no_traceback(gcs: Emulator, tmp_path: Path) -> None:
    # gcsfs logs a non-retriable HttpError (here 400) with logger.exception: a traceback, unless silenced.
    with FaultProxy(gcs.url) as proxy:
        proxy.add("status", path="cat.ndjson", match="media", times=None, status=400)
        proc, took = run_cli(["fetch", "--classes", "cat,dog", "--out", str(tmp_path / "o"), "--source", SRC],
                             cli_env(QUICKDRAW_GCS_ENDPOINT=proxy.url))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "ERROR gcsfs" not in proc.stderr, proc.stderr[-3000:]
    flat = " ".join(proc.stderr.split())
    assert "failed: cat: cannot read gs://quickdraw_dataset/full/simplified/cat.ndjson" in flat and "HTTP 400" in flat
    assert took <= 20


# ------------------------------------------------------------------------------ a server that ignores Range
class _Handler(http.server.SimpleHTTPRequestHandler):
    """``python -m http.server``'s handler (which ignores Range: 200 and the whole file), counting GETs."""

    gets: list[str] = []
    forbid = False

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).gets.append(self.path)
        if self.forbid:
            self.send_error(403)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if self.forbid:
            self.send_error(403)
            return
        super().do_HEAD()


@contextlib.contextmanager
def serve(root: Path, forbid: bool = False) -> Iterator[tuple[str, list[str]]]:
    """``root`` over http on 127.0.0.1: yields the base URL and the list of GET paths it is asked for."""
    handler = type("H", (_Handler,), {"gets": [], "forbid": forbid})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.gets
    finally:
        server.shutdown()
        server.server_close()


def test_server_ignoring_range_fails_at_once(tmp_path: Path, shared_data: Path) -> None:
    # monkey.ndjson is ~600 KB; a capped read asks for its first 64 KB and gets all of it.
    with serve(shared_data.parent) as (base, gets):
        proc, took = run_cli(["fetch", "--classes", "monkey,cat", "--max-per-class", "20", "--out", str(tmp_path / "o"),
                              "--source", f"{base}/quickdraw_dataset/full/simplified", "-j", "1"], cli_env(), timeout=60)
    assert_one_clean_line(proc, "ignores HTTP Range", "/monkey.ndjson", "--source")
    assert took <= 15
    assert gets.count("/quickdraw_dataset/full/simplified/monkey.ndjson") == 1, "downloaded again"


# -------------------------------------------------------------------------- a local file truncated mid-read
def test_local_file_truncated_mid_fetch_fails_at_once(tmp_path: Path, shared_data: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_READ_DEADLINE", "20")  # today's code retried a short local read until this
    src = copy_class_files(shared_data, ["monkey", "cat"], tmp_path / "mirror")
    victim = src / "monkey.ndjson"

    def truncate_on_start(word: str, event: str, info: dict[str, Any]) -> None:
        if word == "monkey" and event == "start":  # after the stat, before the first read
            with open(victim, "rb+") as f:
                f.truncate(info["size"] // 3)

    t = time.monotonic()
    res = fetch(["monkey", "cat"], tmp_path / "o", FetchOptions(source=str(src), chunk_bytes=64 << 10),
                progress=truncate_on_start, concurrency=1)
    assert time.monotonic() - t < 5
    by = {c.word: c for c in res.classes}
    assert by["monkey"].status == "failed" and "shrank while it was being read" in (by["monkey"].error or "")
    assert str(victim) in (by["monkey"].error or "")
    assert by["cat"].status == "fetched" and res.error is None  # a local file's problem is its own


# ------------------------------------------------------------------------------------ environment knobs
@pytest.mark.parametrize("name", ["QUICKDRAW_REQUEST_TIMEOUT", "QUICKDRAW_READ_DEADLINE", "QUICKDRAW_RETRY_BASE"])
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "ten"])
def test_bad_env_knob_is_a_named_error(tmp_path: Path, shared_data: Path, name: str, value: str) -> None:
    src = copy_class_files(shared_data, ["cat"], tmp_path / "mirror")
    res = runner.invoke(app, ["fetch", "--classes", "cat", "--out", str(tmp_path / "o"), "--source", str(src)],
                        env={name: value})
    assert res.exit_code == 2, res.output
    flat = " ".join(res.output.split())
    assert f"{name}='{value}'" in flat and "positive finite number" in flat and "Traceback" not in flat
    assert not (tmp_path / "o").exists(), "the knobs are checked before anything is written"


def test_bad_env_knob_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_READ_DEADLINE", "1e999")  # parses as inf
    with pytest.raises(ConfigError, match="QUICKDRAW_READ_DEADLINE='1e999'"):
        fetch("cat", tmp_path / "o", FetchOptions(source=str(tmp_path)))
    monkeypatch.setenv("QUICKDRAW_READ_DEADLINE", " ")  # empty means unset (the default)
    monkeypatch.setenv("QUICKDRAW_REQUEST_TIMEOUT", "2.5")
    from quickdraw.sources.fs import check_env, read_deadline

    check_env()
    assert read_deadline() == 300.0


# -------------------------------------------------------------------------------------------- Ctrl-C
class Staller:
    """A TCP server that accepts connections and never answers; ``requests`` counts the ones that sent bytes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c: socket.socket) -> None:
        try:
            if c.recv(65536):
                self.requests += 1
            while c.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


def interrupt(proc: subprocess.Popen[str], ready: Any, wait_for: float = 60) -> tuple[int, float, str]:
    """Once ``ready()``, SIGINT ``proc``; return its exit code, the seconds from the signal to its exit, stderr."""
    deadline = time.monotonic() + wait_for
    while not ready():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the fetch never reached the stalled request"
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the stalled request
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return -9, time.monotonic() - t, err
    return proc.returncode, time.monotonic() - t, err


# Measured 0.4-0.9 s on a quiet machine, 1.85-2.4 s with the machine's two cores shared by ten processes: the
# limit says "within seconds" with room for that load, not a benchmark figure.
SIGINT_LIMIT = 3.0


def test_sigint_while_the_server_stalls_exits_130_within_seconds(tmp_path: Path) -> None:
    staller = Staller()
    try:
        proc = subprocess.Popen([*QUICKDRAW, "fetch", "--classes", "animals10", "--out", str(tmp_path / "o")],
                                env=cli_env(QUICKDRAW_GCS_ENDPOINT=staller.url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        code, took, err = interrupt(proc, lambda: staller.requests >= 1)
    finally:
        staller.close()
    assert code == 130, (code, err[-3000:])
    assert took <= SIGINT_LIMIT, f"{took:.2f} s from SIGINT to exit"
    assert "Traceback" not in err and "interrupted" in err and "Aborted" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err


def test_sigint_during_gcsfs_backoff_exits_130_within_2s(gcs: Emulator, tmp_path: Path) -> None:
    # 503 forever: gcsfs sleeps 1, 2, 4, 8, 16 s between its own tries; Ctrl-C must not wait for them.
    with FaultProxy(gcs.url) as proxy:
        proxy.add("status", path="cat.ndjson", match="any", times=None, status=503)
        p = subprocess.Popen([*QUICKDRAW, "fetch", "--classes", "cat", "--out", str(tmp_path / "o"), "--source", SRC],
                             env=cli_env(QUICKDRAW_GCS_ENDPOINT=proxy.url), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        code, took, err = interrupt(p, lambda: len(proxy.faults()) >= 2)
    assert code == 130 and took <= SIGINT_LIMIT, (code, took, err[-3000:])
    assert "Traceback" not in err and "interrupted" in err


WORDS = "cat,dog,monkey,The Eiffel Tower"


def test_sigint_mid_fetch_then_rerun_is_byte_identical(gcs: Emulator, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    base = ["fetch", "--classes", WORDS, "--source", SRC, "-j", "1"]
    proc, _ = run_cli([*base, "--out", str(clean)], cli_env(QUICKDRAW_GCS_ENDPOINT=gcs.url))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    with FaultProxy(gcs.url) as proxy:
        # cat and dog go through; monkey's download stalls (longer than the test) until Ctrl-C.
        proxy.add("stall", path="monkey.ndjson", times=None, delay=120)
        p = subprocess.Popen([*QUICKDRAW, *base, "--out", str(out)], env=cli_env(QUICKDRAW_GCS_ENDPOINT=proxy.url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        code, took, err = interrupt(p, lambda: any(e.action == "stall" for e in proxy.log))
    assert code == 130 and took <= SIGINT_LIMIT, (code, took, err[-3000:])
    assert "Traceback" not in err and "interrupted" in err
    assert (out / "dog" / "_manifest.json").is_file() and not (out / "monkey" / "_manifest.json").exists()
    proc, _ = run_cli([*base, "--out", str(out), "--json"], cli_env(QUICKDRAW_GCS_ENDPOINT=gcs.url))
    assert proc.returncode == 0, proc.stderr
    assert [c["status"] for c in json.loads(proc.stdout)["classes"]] == ["unchanged", "unchanged", "fetched", "fetched"]
    assert dir_bytes(out) == dir_bytes(clean)


# --------------------------------------------------------------------------------------- the CLI itself
def test_cli_fetch_module_imports_no_pipeline() -> None:
    code = ("import sys, quickdraw.cli.fetch; heavy = [m for m in ('pyarrow', 'numpy', 'numba', 'fsspec', "
            "'quickdraw.pipeline.fetch') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_summary_fits_80_columns(tmp_path: Path, shared_data: Path) -> None:
    src = copy_class_files(shared_data, ["The Great Wall of China"], tmp_path / "mirror")
    good = (shared_data / "full" / "simplified" / "cat.ndjson").read_bytes().splitlines()
    (src / "cat.ndjson").write_bytes(b"\n".join([good[0], b"{broken json", b'{"word":"cat"}', good[1], good[2][:30]]))
    proc, _ = run_cli(["fetch", "--classes", "cat,The Great Wall of China", "--out", str(tmp_path / "o"),
                       "--source", str(src)], cli_env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert all(len(ln) <= 80 for ln in lines), "\n".join(lines)
    assert any(ln.strip().startswith("The Great Wall of China ") for ln in lines), "\n".join(lines)  # not wrapped
    assert "  cat: bad_json=1, missing_key=1, truncated_last_line=1" in lines, "\n".join(lines)


def test_an_invalid_host_name_fails_at_once_without_a_traceback(tmp_path: Path) -> None:
    """A host label over 63 characters makes the resolver raise (UnicodeError) instead of returning an error:
    it used to kill the reachability thread and leave fetch waiting forever."""
    env = {**os.environ, "QUICKDRAW_GCS_ENDPOINT": "http://" + "a" * 70 + ".com"}
    p = subprocess.run([sys.executable, "-m", "quickdraw.cli.app", "fetch", "-c", "cat", "-n", "5", "--out",
                        str(tmp_path / "o")], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not a valid host name" in p.stderr and "Traceback" not in p.stderr
