"""The versioned sequence cache: layout, determinism, atomicity, locking, verify, gc, root resolution."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from quickdraw.cache import (
    CACHE_FORMAT_VERSION,
    build_cache,
    cache_root,
    gc,
    list_datasets,
    list_versions,
    read_latest,
    resolve,
    update_fingerprint,
    verify,
    version_id,
)
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.errors import CacheError

CLASSES = ("cat", "dog", "apple")


@pytest.fixture(scope="module")
def strokes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_strokes(tmp_path_factory.mktemp("strokes"), CLASSES, 30, seed=1, rows_per_shard=25)


@pytest.fixture(scope="module")
def strokes_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_strokes(tmp_path_factory.mktemp("strokes_b"), CLASSES, 10, seed=2)


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _shard_rows(strokes: Path, fmt: str, split: str) -> list[dict]:
    rows: list[dict] = []
    for p in sorted((strokes / fmt / split).glob("part-*.parquet")):
        rows.extend(pq.read_table(p).to_pylist())
    return rows


def test_layout_matches_shards(strokes: Path, tmp_path: Path) -> None:
    cv = build_cache(strokes, tmp_path, "mini")
    assert cv.path == tmp_path / "mini" / cv.version and len(cv.version) == 16
    assert read_latest(tmp_path / "mini") == cv.version
    assert cv.classes == list(CLASSES) and cv.formats == ["stroke3", "stroke5"]
    for fmt, k in (("stroke3", 3), ("stroke5", 5)):
        for split in ("train", "val", "test"):
            d = cv.path / fmt / split
            steps = np.load(d / "steps.npy", mmap_mode="r")
            offsets = np.load(d / "offsets.npy", mmap_mode="r")
            labels = np.load(d / "labels.npy", mmap_mode="r")
            lengths = np.load(d / "lengths.npy", mmap_mode="r")
            key_ids = np.load(d / "key_ids.npy", mmap_mode="r")
            assert isinstance(steps, np.memmap)
            assert (steps.dtype, offsets.dtype, labels.dtype, lengths.dtype, key_ids.dtype) == (
                np.int16, np.int64, np.int32, np.int32, np.uint64)
            rows = _shard_rows(strokes, fmt, split)
            assert steps.shape == (sum(r["length"] for r in rows), k)
            assert len(offsets) == len(rows) + 1 and offsets[0] == 0 and offsets[-1] == len(steps)
            for i, r in enumerate(rows):
                np.testing.assert_array_equal(steps[offsets[i] : offsets[i + 1]], np.array(r["sequence"], np.int16))
                assert (labels[i], lengths[i], key_ids[i]) == (r["label"], r["length"], r["key_id"])
            meta = pq.read_table(d / "meta.parquet")
            assert meta.column_names == ["key_id", "word", "countrycode", "recognized", "timestamp", "n_strokes", "n_points"]
            assert meta["key_id"].to_pylist() == [r["key_id"] for r in rows]
            assert meta["word"].to_pylist() == [r["word"] for r in rows]
    m = json.loads((cv.path / "manifest.json").read_text())
    assert m["cache_format_version"] == CACHE_FORMAT_VERSION and m["version"] == cv.version
    assert set(m["files"]) == {p.relative_to(cv.path).as_posix() for p in cv.path.rglob("*.*") if p.name != "manifest.json"}
    assert all(len(f["xxh3_128"]) == 32 for f in m["files"].values())
    assert m["created_by"]["version"] == __import__("quickdraw").__version__
    assert m["formats"]["stroke3"]["norm_scale"] > 0
    assert "time" not in json.dumps(m).lower().replace("timestamp", "")


def test_two_builds_are_byte_identical(strokes: Path, tmp_path: Path) -> None:
    a = build_cache(strokes, tmp_path / "a", "mini")
    b = build_cache(strokes, tmp_path / "b", "mini")
    assert a.version == b.version
    assert _files(a.path) == _files(b.path)


def test_rebuild_is_noop_and_version_tracks_content(strokes: Path, strokes_b: Path, tmp_path: Path) -> None:
    a = build_cache(strokes, tmp_path, "mini")
    mtime = (a.path / "stroke3" / "train" / "steps.npy").stat().st_mtime_ns
    again = build_cache(strokes, tmp_path, "mini", formats=("stroke5", "stroke3"))  # order does not matter
    assert again.version == a.version
    assert (a.path / "stroke3" / "train" / "steps.npy").stat().st_mtime_ns == mtime
    only3 = build_cache(strokes, tmp_path, "mini", formats=("stroke3",))
    other = build_cache(strokes_b, tmp_path, "mini")
    assert len({a.version, only3.version, other.version}) == 3
    assert only3.formats == ["stroke3"]
    assert read_latest(tmp_path / "mini") == other.version
    assert [v.version for v in list_versions("mini", tmp_path)][0] == other.version


def test_fingerprint_chain() -> None:
    assert update_fingerprint("a", "s", {"x": 1, "y": 2}) == update_fingerprint("a", "s", {"y": 2, "x": 1})
    assert update_fingerprint("a", "s", {"x": 1}) != update_fingerprint("a", "t", {"x": 1})
    assert update_fingerprint("ab", "c", {}) != update_fingerprint("a", "bc", {})
    assert version_id("fp", {"formats": ["stroke3"]}) != version_id("fp2", {"formats": ["stroke3"]})
    assert len(version_id("fp", {})) == 16


_BUILD_SNIPPET = "import sys; from quickdraw.cache import build_cache; build_cache(sys.argv[1], sys.argv[2], 'mini')"


def test_killed_build_leaves_no_version(strokes: Path, tmp_path: Path) -> None:
    env = {**os.environ, "_QUICKDRAW_CACHE_BUILD_PAUSE": "60"}
    proc = subprocess.Popen([sys.executable, "-c", _BUILD_SNIPPET, str(strokes), str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 20
        tmp_dirs: list[Path] = []
        while time.monotonic() < deadline:
            tmp_dirs = list((tmp_path / "mini").glob(".tmp-*/stroke3/train/meta.parquet"))
            if tmp_dirs:
                break
            time.sleep(0.05)
        assert tmp_dirs, "the build never reached its pause"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not [p for p in (tmp_path / "mini").iterdir() if not p.name.startswith(".")]
    assert list_datasets(tmp_path) == [] and list_versions("mini", tmp_path) == []
    with pytest.raises(CacheError):
        resolve("mini", root=tmp_path)
    cv = build_cache(strokes, tmp_path, "mini")
    assert verify(cv).ok
    report = gc(tmp_path)
    assert [p.name for p in report.removed] == [tmp_dirs[0].parents[2].name]
    assert list_versions("mini", tmp_path)[0].version == cv.version


def test_concurrent_builds_end_with_one_version(strokes: Path, tmp_path: Path) -> None:
    env = {**os.environ, "_QUICKDRAW_CACHE_BUILD_PAUSE": "0.3"}
    procs = [
        subprocess.Popen([sys.executable, "-c", _BUILD_SNIPPET, str(strokes), str(tmp_path)], env=env)
        for _ in range(2)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    versions = list_versions("mini", tmp_path)
    assert len(versions) == 1 and verify(versions[0]).ok
    assert not list((tmp_path / "mini").glob(".tmp-*"))


def test_verify_names_flipped_and_truncated_files(strokes: Path, tmp_path: Path) -> None:
    cv = build_cache(strokes, tmp_path, "mini")
    assert verify("mini", root=tmp_path).ok
    steps = cv.path / "stroke3" / "train" / "steps.npy"
    data = bytearray(steps.read_bytes())
    data[len(data) // 2] ^= 0x01
    steps.write_bytes(bytes(data))
    labels = cv.path / "stroke5" / "val" / "labels.npy"
    labels.write_bytes(labels.read_bytes()[:-4])
    report = verify(cv.path)
    assert not report.ok
    bad = {(p.file, p.reason) for p in report.problems}
    assert bad == {("stroke3/train/steps.npy", "checksum"), ("stroke5/val/labels.npy", "size")}
    assert "steps.npy" in str(report.problems[0]) or "labels.npy" in str(report.problems[0])


def test_missing_manifest_is_not_a_version(strokes: Path, tmp_path: Path) -> None:
    cv = build_cache(strokes, tmp_path, "mini")
    (cv.path / "manifest.json").unlink()
    with pytest.raises(CacheError, match="manifest.json"):
        resolve(cv.path)
    assert list_datasets(tmp_path) == []


def test_gc_keeps_latest_pinned_and_keep(strokes: Path, strokes_b: Path, tmp_path: Path) -> None:
    old = build_cache(strokes, tmp_path, "mini", formats=("stroke3",))
    pinned = build_cache(strokes, tmp_path, "mini", formats=("stroke5",))
    kept = build_cache(strokes_b, tmp_path, "mini", formats=("stroke3",))
    latest = build_cache(strokes_b, tmp_path, "mini")
    (tmp_path / "mini" / "PINNED").write_text(pinned.version + "\n")
    dry = gc(tmp_path, dry_run=True, keep=[f"mini/{kept.version[:6]}"])
    assert [p.name for p in dry.removed] == [old.version] and old.path.exists()
    report = gc(tmp_path, keep=[kept.version])
    assert [p.name for p in report.removed] == [old.version] and report.freed_bytes > 0
    assert {v.version for v in list_versions("mini", tmp_path)} == {pinned.version, kept.version, latest.version}
    (tmp_path / "mini" / "PINNED").unlink()
    gc(tmp_path, name="mini")
    assert [v.version for v in list_versions("mini", tmp_path)] == [latest.version]
    assert resolve("mini", root=tmp_path).version == latest.version


def test_resolve_by_name_path_and_prefix(strokes: Path, strokes_b: Path, tmp_path: Path) -> None:
    a = build_cache(strokes, tmp_path, "mini")
    b = build_cache(strokes_b, tmp_path, "mini")
    assert resolve("mini", root=tmp_path).version == b.version
    assert resolve("mini", version=a.version[:6], root=tmp_path).version == a.version
    assert resolve(tmp_path / "mini").version == b.version
    assert resolve(str(a.path)).version == a.version
    with pytest.raises(CacheError, match="have: mini"):
        resolve("nope", root=tmp_path)
    with pytest.raises(CacheError, match="unknown version"):
        resolve("mini", version="ffffffff", root=tmp_path)


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUICKDRAW_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("QUICKDRAW_CACHE")
    import platformdirs

    assert cache_root() == Path(platformdirs.user_cache_dir("quickdraw"))


def test_bad_input_names_the_problem(strokes: Path, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="_manifest.json"):
        build_cache(tmp_path, tmp_path / "c", "mini")
    with pytest.raises(CacheError, match="invalid cache name"):
        build_cache(strokes, tmp_path / "c", "../evil")
    bad = write_synthetic_strokes(tmp_path / "bad", CLASSES, 5, seed=3, formats=("stroke3",))
    shard = bad / "stroke3" / "train" / "part-00000.parquet"
    t = pq.read_table(shard)
    lengths = t["length"].to_numpy().copy()
    lengths[1] += 1
    import pyarrow as pa

    t = t.set_column(t.column_names.index("length"), "length", pa.array(lengths, pa.int32()))
    pq.write_table(t, shard)
    with pytest.raises(CacheError, match="part-00000.parquet: row 1"):
        build_cache(bad, tmp_path / "c", "mini", formats=("stroke3",))
    assert list_datasets(tmp_path / "c") == [] and not list((tmp_path / "c" / "mini").glob(".tmp-*"))
    with pytest.raises(CacheError, match="stroke5"):  # asked for explicitly, but prepare wrote stroke3 only
        build_cache(bad, tmp_path / "c", "mini", formats=("stroke3", "stroke5"))


def test_gc_without_latest_keeps_the_version_load_opens(strokes: Path, strokes_b: Path, tmp_path: Path) -> None:
    """No LATEST file: load falls back to the newest version, so gc must keep exactly that one (it used to
    delete every version)."""
    older = build_cache(strokes, tmp_path, "mini")
    newer = build_cache(strokes_b, tmp_path, "mini")
    os.utime(older.path / "manifest.json", (1_000_000, 1_000_000))  # make "newest" unambiguous
    (tmp_path / "mini" / "LATEST").unlink()
    assert resolve("mini", root=tmp_path).version == newer.version
    assert [p.name for p in gc(tmp_path, dry_run=True).removed] == [older.version]
    report = gc(tmp_path)
    assert [p.name for p in report.removed] == [older.version] and newer.path.is_dir()
    assert resolve("mini", root=tmp_path).version == newer.version
    assert gc(tmp_path).removed == []  # the last version of a name without LATEST is never collected


def test_gc_skips_a_version_whose_build_lock_is_held(strokes: Path, strokes_b: Path, tmp_path: Path) -> None:
    from filelock import FileLock

    old = build_cache(strokes, tmp_path, "mini")
    build_cache(strokes_b, tmp_path, "mini")
    with FileLock(str(tmp_path / "mini" / ".locks" / f"{old.version}.lock")):  # a build of `old` is running
        report = gc(tmp_path)
        assert report.removed == [] and old.path in report.kept and old.path.is_dir()
    assert [p.name for p in gc(tmp_path).removed] == [old.version]


@pytest.mark.parametrize("pointer", ["LATEST", "PINNED"])
def test_gc_rereads_latest_and_pinned_under_the_lock(
    strokes: Path, strokes_b: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pointer: str
) -> None:
    """A build_cache that finishes after gc read LATEST (renames its version in, points LATEST at it, releases
    the lock) must not lose that version: gc decides again once it holds the version's lock."""
    import importlib

    import filelock

    gc_mod = importlib.import_module("quickdraw.cache.gc")  # the package attribute `gc` is the function

    old = build_cache(strokes, tmp_path, "mini")
    new = build_cache(strokes_b, tmp_path, "mini")
    name_dir = tmp_path / "mini"

    class RacingLock(filelock.FileLock):
        def acquire(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            # The concurrent build completes just before gc gets the lock (gc has already read LATEST/PINNED).
            (name_dir / pointer).write_text(old.version + "\n")
            return super().acquire(*args, **kwargs)

    monkeypatch.setattr(gc_mod, "FileLock", RacingLock)
    report = gc(tmp_path)
    assert report.removed == [] and old.path in report.kept and (old.path / "manifest.json").is_file()
    assert resolve("mini", root=tmp_path).version == (old.version if pointer == "LATEST" else new.version)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsynced files")
def test_manifest_is_fsynced_before_the_version_is_renamed_in(
    strokes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src, dst) -> None:  # type: ignore[no-untyped-def]
        events.append(("rename", os.fspath(dst)))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    cv = build_cache(strokes, tmp_path, "mini")
    placed = events.index(("rename", str(cv.path)))
    synced = [i for i, (kind, p) in enumerate(events) if kind == "fsync" and "manifest.json" in Path(p).name]
    assert synced and synced[0] < placed, events
    assert not list(cv.path.glob(".manifest.json.*"))  # write_atomic's temp name never reaches the version


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda m: m.pop("files"), "no 'files' key"),
        (lambda m: m.pop("formats"), "no 'formats' key"),
        (lambda m: m.update(files=[]), "'files' is a list"),
        (lambda m: m.update(formats={"stroke3": {"channels": 3}}), "formats.stroke3 has no 'splits'"),
        (lambda m: m["files"].update({"x.npy": {"size": "12"}}), "files['x.npy']"),
    ],
)
def test_malformed_manifest_is_a_cache_error_naming_it(strokes: Path, tmp_path: Path, edit, problem: str) -> None:  # type: ignore[no-untyped-def]
    cv = build_cache(strokes, tmp_path, "mini")
    path = cv.path / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match=rf"manifest\.json: malformed manifest \({re.escape(problem)}"):
        resolve(cv.path)
    with pytest.raises(CacheError, match="manifest.json"):
        verify(cv.path)  # was a KeyError from verify.py
    assert list_versions("mini", tmp_path) == []  # listed versions are skipped with a warning, as before


def test_list_datasets_searches_the_project_cache_like_resolve(
    strokes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `dvc repro` the cache is ./data/cache: load found it by name, list_datasets did not."""
    import quickdraw as qd

    project = tmp_path / "project"
    build_cache(strokes, project / "data" / "cache", "animals10")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("QUICKDRAW_CACHE", str(tmp_path / "empty"))
    monkeypatch.chdir(project)
    assert qd.list_datasets() == ["animals10"] and list_datasets() == ["animals10"]
    assert qd.load("animals10").cache.path.parent == project / "data" / "cache" / "animals10"
    assert [v.version for v in list_versions("animals10")] == [resolve("animals10").version]
    assert list_datasets(tmp_path / "empty") == []  # an explicit root is the only place looked at
    with pytest.raises(CacheError, match="have: animals10"):
        resolve("nope")
    # The cache root still wins over the project cache for a name in both, for listing as for loading.
    other = build_cache(strokes, tmp_path / "empty", "animals10", formats=("stroke3",))
    assert list_datasets() == ["animals10"] and resolve("animals10").version == other.version
    assert [v.version for v in list_versions("animals10")] == [other.version]


def test_default_formats_are_the_prepared_ones(tmp_path: Path) -> None:
    only3 = write_synthetic_strokes(tmp_path / "s3", CLASSES, 6, seed=4, formats=("stroke3",))
    cv = build_cache(only3, tmp_path / "c", "mini")  # used to fail: "stroke5: missing"
    assert cv.formats == ["stroke3"]
    assert cv.version == build_cache(only3, tmp_path / "c", "mini", formats=("stroke3",)).version
    both = write_synthetic_strokes(tmp_path / "both", CLASSES, 6, seed=4)
    assert build_cache(both, tmp_path / "c", "two").formats == ["stroke3", "stroke5"]
    # prepare's manifest lists its formats: that list wins over stray directories.
    m = json.loads((both / "_manifest.json").read_text())
    (both / "_manifest.json").write_text(json.dumps({**m, "formats": ["stroke5"]}))
    assert build_cache(both, tmp_path / "c", "five").formats == ["stroke5"]


def test_write_latest_uses_write_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from quickdraw.cache import store

    calls: list[tuple[Path, bytes]] = []
    monkeypatch.setattr(store, "write_atomic", lambda p, data: calls.append((p, data)))
    store.write_latest(tmp_path, "0123456789abcdef")
    assert calls == [(tmp_path / "LATEST", b"0123456789abcdef\n")]
    assert not hasattr(store, "atomic_write_text")  # the one-line wrapper is gone


def test_unexpandable_root_is_a_cache_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_CACHE", "~no-such-user-qd/cache")
    with pytest.raises(CacheError, match=r"\$QUICKDRAW_CACHE"):
        cache_root()


def test_gc_removes_temp_files_of_dead_writers_only(strokes: Path, tmp_path: Path) -> None:
    # A build killed while replacing LATEST leaves `.LATEST.<pid>.incomplete` beside the versions.
    cv = build_cache(strokes, tmp_path, "mini")
    name_dir = cv.path.parent
    dead = name_dir / ".LATEST.999999999.incomplete"
    alive = name_dir / f".LATEST.{os.getpid()}.incomplete"
    dead.write_text("x")
    alive.write_text("x")
    report = gc(tmp_path)
    assert dead in report.removed and not dead.exists()
    assert alive.exists() and cv.path.exists()
