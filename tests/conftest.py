"""Shared fixtures: the GCS emulator serving ../shared/data and gcsfs configured for it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

# gcsfs 2026.x stalls 60 s per call against an emulator unless this is set before gcsfs is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import pytest

from tests.emulator import BUCKET, SHARED_DATA, Emulator, start_emulator


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one intra-op thread for a test module (``pytestmark = pytest.mark.usefixtures(...)``); the
    previous count is restored after the module, for the other test modules."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The mini mirror of the bucket in ../shared (skips where it is absent)."""
    if not (SHARED_DATA / "full" / "simplified").is_dir():
        pytest.skip(f"shared sample data not found at {SHARED_DATA} (set QUICKDRAW_SHARED_DATA); skipping")
    return SHARED_DATA


@pytest.fixture(scope="session")
def gcs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A fake-gcs-server on 127.0.0.1 serving ../shared/data as bucket ``quickdraw_dataset``.

    Sets QUICKDRAW_GCS_ENDPOINT so that ``gs://`` sources go to the emulator.
    """
    emu = start_emulator(shared_data.parent, tmp_path_factory.mktemp("gcs") / "fake-gcs.log")
    old = os.environ.get("QUICKDRAW_GCS_ENDPOINT")
    os.environ["QUICKDRAW_GCS_ENDPOINT"] = emu.url
    try:
        yield emu
    finally:
        emu.stop()
        if old is None:
            os.environ.pop("QUICKDRAW_GCS_ENDPOINT", None)
        else:
            os.environ["QUICKDRAW_GCS_ENDPOINT"] = old


@pytest.fixture()
def gcs_source(gcs: Emulator) -> str:
    """The source URL for the emulated bucket's simplified drawings."""
    return f"gs://{BUCKET}/full/simplified"


@pytest.fixture()
def bucket_factory(tmp_path: Path) -> Iterator[object]:
    """Start an emulator over a custom bucket folder: ``factory({"full/simplified/cat.ndjson": b"..."})``."""
    started: list[Emulator] = []

    def make(files: dict[str, bytes], bucket: str = BUCKET) -> Emulator:
        root = tmp_path / "buckets"
        for rel, data in files.items():
            p = root / bucket / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        emu = start_emulator(root, tmp_path / "fake-gcs.log")
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


def copy_class_files(shared: Path, words: list[str], dest: Path) -> Path:
    """Copy a few simplified class files from the shared mirror into a local folder (tests only)."""
    d = dest / "full" / "simplified"
    d.mkdir(parents=True, exist_ok=True)
    for w in words:
        shutil.copy(shared / "full" / "simplified" / f"{w}.ndjson", d / f"{w}.ndjson")
    return d
