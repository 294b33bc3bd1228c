"""The ``quickdraw serve`` command: help, one-line errors, the loopback default, and where examples come from."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.serve import examples_for_checkpoint
from tests.serve.conftest import CACHE_NAME, Server, Trained, start_server, stop_server

runner = CliRunner()


def test_help_has_an_example() -> None:
    r = runner.invoke(app, ["serve", "--help"])
    assert r.exit_code == 0 and "Example: quickdraw serve" in r.output and "127.0.0.1" in r.output


def test_missing_or_bad_checkpoint_is_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["serve", "--checkpoint", str(tmp_path / "nope.pt")])
    assert r.exit_code == 2 and "checkpoint not found" in r.output and "Traceback" not in r.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = runner.invoke(app, ["serve", "--checkpoint", str(bad)])
    assert r.exit_code == 2 and "not a readable checkpoint" in r.output and "Traceback" not in r.output


def test_unknown_cache_and_busy_port_are_one_line(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_CACHE", str(trained.cache_root))
    r = runner.invoke(app, ["serve", "--checkpoint", str(trained.checkpoint), "--cache", "no-such-cache"])
    assert r.exit_code == 2 and "no-such-cache" in r.output and "Traceback" not in r.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = runner.invoke(app, ["serve", "--checkpoint", str(trained.checkpoint), "--port", str(port)])
    assert r.exit_code == 2 and "port is in use" in r.output and "--port" in r.output


def test_serves_on_loopback_by_default_with_the_training_cache(server: Server, trained: Trained) -> None:
    # The module's server runs with the default --host.
    text = server.log.read_text()
    assert f"quickdraw serve: {server.url}/" in text and "http://127.0.0.1:" in text
    port = int(server.url.rsplit(":", 1)[1])
    listening = [ln.split() for ln in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    ours = [f[1] for f in listening if int(f[1].split(":")[1], 16) == port and f[3] == "0A"]  # 0A: LISTEN
    assert ours == ["0100007F:%04X" % port]  # 127.0.0.1 only, not 0.0.0.0
    with urllib.request.urlopen(server.url + "/api/health", timeout=10) as r:
        health = json.loads(r.read())
    assert health["examples"]["cache"] == CACHE_NAME


def test_examples_default_to_the_checkpoints_cache_by_name_only(trained: Trained, tmp_path: Path) -> None:
    # Without --cache the server looks up the name the checkpoint recorded (the module server above does).
    s = start_server(trained.checkpoint, trained.cache_root, tmp_path / "serve.log", cache=None)
    try:
        with urllib.request.urlopen(s.url + "/api/health", timeout=10) as r:
            assert json.loads(r.read())["examples"]["cache"] == CACHE_NAME
    finally:
        stop_server(s)
    root = trained.cache_root
    assert examples_for_checkpoint(None, {"cache": {"name": CACHE_NAME}}, root) is not None
    # A path recorded in a checkpoint is never followed, whatever it points at.
    real = str(root / CACHE_NAME)
    for name in (real, "../" + CACHE_NAME, None, 42, "missing-cache"):
        assert examples_for_checkpoint(None, {"cache": {"name": name}}, root) is None, name
    assert examples_for_checkpoint(None, {}, root) is None
