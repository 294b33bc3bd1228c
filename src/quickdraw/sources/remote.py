"""Stage folders that are fsspec URLs (``gs://``, ``s3://``, ...): the object-store side of fetch and prepare.

A local folder (a plain path, ``file://...``, or a shared mount every worker sees) is written in place as
before, with renames; an object store has no rename, so the stages write each file locally first and upload
it as one whole object (an object is visible only once its upload completed), and write the manifest object
last. The same rules as :mod:`quickdraw._ownership` hold for buckets:

* a prefix holding objects but no ownership marker object (``.quickdraw-output.json``) is refused unless
  ``overwrite``; a marker of another kind is refused;
* only objects whose names the stage writes are ever deleted (:func:`remove_owned`);
* one writer at a time: a lock object created with "create only" semantics where the store has them
  (gcsfs ``mode="create"``: ``ifGenerationMatch=0``), and removed when the run ends. A run that is killed
  (SIGKILL, power cut) leaves it behind: the next run on the same host breaks it when the pid it names is
  gone; elsewhere the refusal names it and says to delete it once no run is active.

Low layer: fsspec and the foundation only.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fsspec

from quickdraw._ownership import LOCK, MARKER
from quickdraw._safety import check_relpath
from quickdraw.errors import OwnershipError, QuickDrawError, UnsafePathError
from quickdraw.sources.defaults import ENDPOINT_ENV, TOKEN_ENV

__all__ = ["claim_remote", "download", "is_remote", "local_path", "output_fs", "read_json", "remote_lock",
           "remove_owned", "stage_class", "upload"]

#: A fetched class is complete once this object exists (docs/FORMATS.md section 1; sources/parquet.py).
MANIFEST = "_manifest.json"
#: fetch and prepare manifests are small; anything larger is not one of ours.
MAX_JSON_BYTES = 64 << 20


def _protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an fsspec URL of a non-local filesystem (``file://`` and plain paths are local)."""
    return _protocol(os.fspath(path)) not in ("file", "local")


def local_path(path: str | os.PathLike[str]) -> Path:
    """A local folder from a plain path or a ``file://`` URL."""
    s = os.fspath(path)
    if s.lower().startswith("file://"):
        s = s[len("file://"):]
    return Path(s)


def output_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """``(filesystem, root path)`` for a stage folder URL.

    ``gs://`` uses ``$QUICKDRAW_GCS_TOKEN`` when set, anonymous access against an emulator or mirror
    (``$QUICKDRAW_GCS_ENDPOINT``), and Google's default credentials otherwise (writing to a real bucket needs
    them). Other protocols take their usual configuration (``s3fs`` reads the AWS environment).
    """
    kwargs: dict[str, Any] = {}
    if _protocol(url) in ("gs", "gcs"):
        endpoint = os.environ.get(ENDPOINT_ENV) or os.environ.get("STORAGE_EMULATOR_HOST")
        kwargs["token"] = os.environ.get(TOKEN_ENV) or ("anon" if endpoint else "google_default")
        if endpoint:
            kwargs["endpoint_url"] = endpoint
    try:
        fs, root = fsspec.core.url_to_fs(url, **kwargs)
    except (ImportError, ValueError) as exc:
        raise QuickDrawError(f"{url}: cannot open this URL ({exc}); install the fsspec plugin of its scheme "
                             f"(gcsfs for gs://, s3fs for s3://) or use a local folder") from None
    except Exception as exc:  # noqa: BLE001 - e.g. google.auth's DefaultCredentialsError on a worker
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if type(exc).__module__.startswith("google.auth"):
            raise QuickDrawError(f"{url}: no credentials to write to this bucket ({first}): set {TOKEN_ENV} to a "
                                 f"service-account key file, or {ENDPOINT_ENV} for an emulator or mirror, on every "
                                 f"machine that writes (the Dask workers too)") from None
        raise QuickDrawError(f"{url}: cannot open this URL ({type(exc).__name__}: {first})") from None
    return fs, root.rstrip("/")


def _url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return fs.unstrip_protocol(path)


def read_json(fs: fsspec.AbstractFileSystem, path: str, what: str) -> Any | None:
    """The JSON document of object ``path`` (None if it does not exist); a bad one is a named error."""
    try:
        with fs.open(path, "rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(raw) > MAX_JSON_BYTES:
        raise UnsafePathError(f"{_url(fs, path)}: {what} is larger than {MAX_JSON_BYTES} bytes: not one quickdraw wrote")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise UnsafePathError(f"{_url(fs, path)}: {what} is not valid JSON ({exc})") from None


def upload(fs: fsspec.AbstractFileSystem, local: Path, path: str) -> None:
    """Upload ``local`` as the whole object ``path`` (visible only once complete: object stores have no
    partial objects)."""
    fs.put_file(str(local), path)


def download(fs: fsspec.AbstractFileSystem, path: str, local: Path) -> None:
    """Download object ``path`` to ``local`` through a temporary name, renamed when complete."""
    tmp = local.with_name(f".{local.name}.{os.getpid()}.incomplete")
    try:
        fs.get_file(path, str(tmp))
        os.replace(tmp, local)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _children(fs: fsspec.AbstractFileSystem, folder: str) -> list[dict[str, Any]]:
    try:
        return [e for e in fs.ls(folder, detail=True, refresh=True) if e["name"].rstrip("/") != folder]
    except FileNotFoundError:
        return []


def claim_remote(url: str, kind: str, *, overwrite: bool = False, option: str = "--out") -> None:
    """Make the prefix ``url`` an output of ``kind`` (an ownership marker object), or raise OwnershipError.

    The rules of :func:`quickdraw._ownership.claim_output` for a bucket: empty or missing -> claimed; this
    kind's marker -> accepted; another kind's marker, or objects without a marker -> refused (the latter
    unless ``overwrite``).
    """
    fs, root = output_fs(url)
    marker = f"{root}/{MARKER}"
    doc = read_json(fs, marker, "ownership marker") if fs.exists(marker) else None
    found = doc.get("kind") if isinstance(doc, dict) and doc.get("created_by") == "quickdraw" else None
    if found == kind:
        return
    if found is not None and not overwrite:
        raise OwnershipError(f"{url} is a quickdraw {found} output, not a {kind} output: pick another {option}")
    others = [e["name"].rsplit("/", 1)[-1] for e in _children(fs, root)]
    others = [n for n in others if n not in (MARKER, LOCK)]
    if found is None and others and not overwrite:
        shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
        raise OwnershipError(
            f"{url} already holds objects and was not created by quickdraw (no {MARKER}; it holds {shown}): "
            f"quickdraw replaces objects in its output folders, so it will not write there. Pick a new or empty "
            f"{option}, or pass --overwrite if the prefix is yours to reuse (objects quickdraw did not write are "
            "left alone either way)")
    data = json.dumps({"created_by": "quickdraw", "kind": kind}, sort_keys=True) + "\n"
    fs.pipe_file(marker, data.encode("utf-8"))


def remove_owned(fs: fsspec.AbstractFileSystem, folder: str, patterns: Iterable[str],
                 keep: Iterable[str] = ()) -> list[str]:
    """Delete the objects directly under ``folder`` whose names match ``patterns`` and are not in ``keep``;
    nothing else is touched (no other object, nothing deeper). Returns the names removed."""
    pats, kept = tuple(patterns), set(keep)
    removed = []
    for e in _children(fs, folder):
        name = e["name"].rstrip("/").rsplit("/", 1)[-1]
        if e.get("type") == "directory" or name in kept or not any(fnmatch.fnmatchcase(name, p) for p in pats):
            continue
        fs.rm_file(e["name"])
        removed.append(name)
    return removed


@contextlib.contextmanager
def remote_lock(url: str, what: str) -> Iterator[None]:
    """Hold the writer lock object ``url/.quickdraw.lock`` for the block; refuse at once if it exists."""
    fs, root = output_fs(url)
    path = f"{root}/{LOCK}"
    holder = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": int(time.time())}).encode()
    _break_if_dead(fs, path)
    try:
        try:
            fs.pipe_file(path, holder, mode="create")  # gcsfs: ifGenerationMatch=0, atomic
        except TypeError:  # a filesystem without create-only writes: check, then write (a small race window)
            if fs.exists(path):
                raise FileExistsError(path) from None
            fs.pipe_file(path, holder)
    except (FileExistsError, OSError) as exc:
        if not isinstance(exc, FileExistsError) and not fs.exists(path):
            raise OwnershipError(f"cannot create the lock object {_url(fs, path)}: {exc}") from None
        doc = read_json(fs, path, "lock") or {}
        since = doc.get("since") if isinstance(doc, dict) else None
        who = (f" (held by pid {doc.get('pid')} on {doc.get('host')} since "
               f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(since))})") if isinstance(since, int) and 0 <= since < 2**33 else ""
        raise OwnershipError(f"another quickdraw {what} is writing into {url}{who}: wait for it to finish, or "
                             f"use another --out; if no run is active (one was killed), delete {_url(fs, path)}") from None
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            fs.rm_file(path)


def _break_if_dead(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Remove a lock object left by a run of this machine whose process is gone (a SIGKILL, a power cut):
    only then can quickdraw prove that nobody holds it. A lock of another host is left alone."""
    try:
        doc = read_json(fs, path, "lock")
    except QuickDrawError:
        return
    if not isinstance(doc, dict) or doc.get("host") != socket.gethostname() or type(doc.get("pid")) is not int:
        return
    try:
        os.kill(doc["pid"], 0)
        return  # alive (or a pid of another user's process): not ours to break
    except ProcessLookupError:
        pass
    except (OSError, OverflowError):  # OverflowError: a pid no process can have (a hand-edited lock)
        return
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def _class_name(url: str, name: str) -> str:
    """``name`` if it is one plain path component; a listing or a caller naming ``..`` (or ``a/b``) would put
    the class folder outside the staging folder."""
    check_relpath(name, f"{url}: class folder name")
    if "/" in name:
        raise UnsafePathError(f"{url}: class folder name {name[:80]!r} is not a single folder name")
    return name


def stage_class(url: str, word: str, dest: Path) -> Path:
    """Download one complete fetched class (its manifest and the parts it lists) from ``url/<word>/`` into
    ``dest/<word>/``, so that the local readers (:mod:`quickdraw.sources.parquet`) read it as they read a
    local fetch output. Part names come from data, so each must be a plain ``part-*.parquet`` name."""
    fs, root = output_fs(url)
    cdir = dest / _class_name(url, word)
    cdir.mkdir(parents=True, exist_ok=True)
    mpath = f"{root}/{word}/{MANIFEST}"
    doc = read_json(fs, mpath, "class manifest")
    if not isinstance(doc, dict):
        raise FileNotFoundError(f"class {word!r} is not complete in {url} (no {MANIFEST})")
    for p in doc.get("parts") or []:
        name = p.get("file") if isinstance(p, dict) else p
        check_relpath(name, f"{_url(fs, mpath)}: part entry")
        if "/" in name or not fnmatch.fnmatchcase(name, "part-*.parquet"):
            raise UnsafePathError(f"{_url(fs, mpath)}: part entry {name!r} is not a part-*.parquet name")
        download(fs, f"{root}/{word}/{name}", cdir / name)
    (cdir / MANIFEST).write_text(json.dumps(doc), encoding="utf-8")
    return cdir


def fetched_classes(url: str) -> list[str]:
    """The words under ``url`` whose class is complete (has a manifest object), sorted by name."""
    fs, root = output_fs(url)
    if not fs.exists(root):
        raise FileNotFoundError(f"fetch output not found: {url}")
    words = []
    for e in _children(fs, root):
        if e.get("type") != "directory":
            continue
        name = e["name"].rstrip("/").rsplit("/", 1)[-1]
        if fs.exists(f"{root}/{name}/{MANIFEST}"):
            words.append(_class_name(url, name))
    return sorted(words)
