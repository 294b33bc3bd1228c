"""Fixtures for ``quickdraw serve``: a tiny checkpoint trained by the library on a tiny cache of real drawings.

Real pipeline, small data: fetch (the shared simplified files of :data:`WORDS`, read from ../shared), prepare,
cache build and train, all through the library functions the CLI calls. The model is too small to be good; the
tests only need a real checkpoint whose answers the server and ``quickdraw predict`` must agree on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Shared sample classes the test checkpoint knows; each also has a full/raw file in the shared mirror.
WORDS = ["apple", "cat", "The Eiffel Tower", "fish"]
CACHE_NAME = "serve-tiny"


@dataclass(frozen=True)
class Trained:
    checkpoint: Path
    cache_root: Path
    cache_name: str
    shared: Path


@pytest.fixture(scope="session")
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    import torch

    from quickdraw.cache import build_cache
    from quickdraw.pipeline.fetch import FetchOptions, fetch
    from quickdraw.pipeline.prepare import prepare
    from quickdraw.pipeline.train import TrainParams, train

    base = tmp_path_factory.mktemp("serve-model")
    opts = FetchOptions(source=str(shared_data / "full" / "simplified"))
    res = fetch(WORDS, base / "raw", opts, concurrency=2)
    assert not res.failed, res.to_dict()
    prepare(base / "raw", base / "strokes", classes=WORDS, min_len=6, max_len=250, seed=0)
    root = base / "cache"
    build_cache(base / "strokes", root, CACHE_NAME)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        params = TrainParams(hidden=16, layers=1, epochs=3, batch_size=16, min_steps=0, warmup_steps=2,
                             lr=1e-2, patience=3, dropout=0.0, seed=3, device="cpu", min_steps_per_epoch=1)
        result = train(CACHE_NAME, base / "models", params=params, root=root, live_dir=base / "dvclive")
    finally:
        torch.set_num_threads(old)
    return Trained(result.best_path, root, CACHE_NAME, shared_data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]
    log: Path


def start_server(checkpoint: Path, cache_root: Path, log: Path, *extra: str, cache: str | None = CACHE_NAME) -> Server:
    """``quickdraw serve`` as a subprocess on a free loopback port, once ``/api/health`` answers."""
    port = free_port()
    args = [sys.executable, "-m", "quickdraw", "serve", "--checkpoint", str(checkpoint), "--port", str(port), *extra]
    if cache is not None:
        args += ["--cache", cache]
    env = {**os.environ, "QUICKDRAW_CACHE": str(cache_root)}
    f = open(log, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"quickdraw serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                if r.status == 200:
                    return Server(url, proc, log)
        except OSError:  # refused (not listening yet), reset, timeout: try again
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"quickdraw serve did not answer within 90 s:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(trained.checkpoint, trained.cache_root, tmp_path_factory.mktemp("serve-log") / "serve.log")
    yield s
    stop_server(s)
