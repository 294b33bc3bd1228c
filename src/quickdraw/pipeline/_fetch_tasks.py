"""fetch on any executor, and into fsspec URLs: the per-class task and the driver that submits it.

The task (:func:`fetch_class_task`) is self-contained and picklable: a class word, the output folder as a
string, the frozen options and a stop flag. It runs :func:`quickdraw.pipeline.fetch.fetch_class`, so every
class is written by the same code, in the same parts, as a local fetch: byte-identical output whatever the
number of workers and the order they finish in.

Who may write what, when writes happen on workers:

* The driver (the client) claims the output folder (ownership marker) and holds its writer lock for the
  whole run; no second run starts while it lives. It cancels or stops every task before it lets go.
* A task takes no root lock (the client holds it; a worker in another process would be refused). On a
  local or shared folder it holds an exclusive ``flock`` on its class folder instead, so a task that
  outlived a killed client (Dask does not interrupt a running task) and the same class of the next run
  never write one folder at once: the second waits. A worker that is SIGKILLed loses its flock with its
  process, so Dask's retry on another worker takes it at once and resumes from the last checkpoint.
  (Where ``flock`` is unsupported, e.g. some NFS mounts, the task logs it and relies on the client's lock.)
* On an object store (``gs://``, ``s3://``) a task fetches into a private local staging folder and uploads
  after each checkpoint: new parts as whole objects, then the quarantine, then the resume state; at the
  end the class manifest, last. What a killed task uploaded is a resumable checkpoint for the retry; a
  class prefix is complete only once its manifest object exists.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any

from quickdraw._ownership import claim_output, output_lock, owned_subdir
from quickdraw.errors import BadRecordError, FetchStopped, OwnershipError, QuickDrawError, SourceError
from quickdraw.parallel import stop_signal
from quickdraw.pipeline.fetch import (
    FORMATS,
    MANIFEST,
    OWN_FILES,
    QUARANTINE,
    STATE,
    ClassResult,
    FetchOptions,
    FetchResult,
    Progress,
    _is_fetch_output,
    fetch_class,
)
from quickdraw.sources import remote
from quickdraw.sources.fs import StopFlag, class_url

__all__ = ["CLASS_LOCK_WAIT", "TaskOutcome", "fetch_class_task", "fetch_with_executor"]

log = logging.getLogger(__name__)

#: Seconds a task waits for another writer of its class folder (a task of a killed run) to finish.
CLASS_LOCK_WAIT = 600.0
#: Seconds the driver waits, after Ctrl-C, for running tasks to checkpoint and stop before it lets go.
DRAIN_WAIT = 15.0

#: ``(result, source_wide, strict)``: ``strict`` holds ``(url, line, reason, message)`` of a bad record
#: under --strict (BadRecordError itself does not survive pickling: its ``__init__`` takes four arguments).
TaskOutcome = tuple[ClassResult, bool, tuple[str, int, str, str] | None]


@contextlib.contextmanager
def _class_lock(cdir: Path, stop: StopFlag | None) -> Iterator[None]:
    """An exclusive ``flock`` on the class folder itself (no lock file: the output stays byte-identical)."""
    import fcntl

    fd = os.open(cdir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        deadline = time.monotonic() + CLASS_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    log.warning("%s: cannot flock the class folder (%s); relying on the run's own lock", cdir,
                                exc.strerror)
                    break
            if stop is not None and stop.is_set():
                raise FetchStopped(f"{cdir.name}: {getattr(stop, 'reason', 'stopped on request')}")
            if time.monotonic() > deadline:
                raise OwnershipError(f"{cdir}: another quickdraw fetch task has been writing this class for "
                                     f"{CLASS_LOCK_WAIT:.0f} s: wait for it to finish, then re-run")
            time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the flock


def fetch_class_task(word: str, out: str, opts: FetchOptions, stop: StopFlag | None = None) -> TaskOutcome:
    """Fetch one class into ``out`` (a local or shared folder, or an fsspec URL) on whichever worker runs it.

    The output folder must already be claimed (the driver does it). Never raises for a class that fails on
    its own: the outcome says ``failed`` with the error, and whether every class would fail alike.
    """
    url = class_url(opts.source, word, FORMATS[opts.format][1])
    try:
        if remote.is_remote(out):
            res = _fetch_class_remote(word, out, opts, stop)
        else:
            root = remote.local_path(out)
            cdir = owned_subdir(root, word)
            with _class_lock(cdir, stop):
                res = fetch_class(word, root, opts, stop=stop)
        return res, False, None
    except FetchStopped as exc:
        return ClassResult(word, url, "stopped", error=str(exc)), False, None
    except BadRecordError as exc:
        return ClassResult(word, url, "failed", error=str(exc)), False, (exc.url, exc.line, exc.reason, str(exc))
    except QuickDrawError as exc:
        wide = isinstance(exc, SourceError) and exc.source_wide
        return ClassResult(word, url, "failed", error=str(exc)), wide, None


# ------------------------------------------------------------------------------------------ object stores


def _fetch_class_remote(word: str, out: str, opts: FetchOptions, stop: StopFlag | None) -> ClassResult:
    fs, root = remote.output_fs(out)
    rdir = f"{root}/{word}"
    stage = Path(tempfile.mkdtemp(prefix=f"quickdraw-fetch-{os.getpid()}-"))
    try:
        sroot = claim_output(stage / "out", "fetch")
        scdir = owned_subdir(sroot, word)
        # The staging folder mirrors the class prefix: its manifest, resume state and quarantine as they
        # are, and each part it names as a sparse file of the object's size. fetch_class judges "unchanged"
        # and "resume" from names and sizes only (the hashes were recorded when the parts were written), so
        # nothing but these small files is downloaded. A mirrored part has no blocks on disk; a part that
        # fetch_class rewrites is a real file and is uploaded, a mirrored one never is.
        mirrored: set[str] = set()
        uploaded: dict[str, tuple[int, int, int]] = {}
        sizes = {e["name"].rsplit("/", 1)[-1]: int(e.get("size") or 0)
                 for e in _ls(fs, rdir) if e.get("type") != "directory"}
        docs: dict[str, Any] = {}
        for name in (MANIFEST, STATE):
            if name in sizes:
                doc = remote.read_json(fs, f"{rdir}/{name}", f"{word}: {name}")
                if isinstance(doc, dict):
                    docs[name] = doc
                    (scdir / name).write_text(json.dumps(doc), encoding="utf-8")
        for doc in docs.values():
            for p in doc.get("parts") or []:
                name = p.get("file") if isinstance(p, dict) else None
                if isinstance(name, str) and name in sizes and "/" not in name and name.startswith("part-") \
                        and name not in mirrored:
                    with open(scdir / name, "wb") as f:
                        f.truncate(sizes[name])
                    mirrored.add(name)
        if QUARANTINE in sizes and STATE in docs:
            remote.download(fs, f"{rdir}/{QUARANTINE}", scdir / QUARANTINE)
        state = {"manifest_online": MANIFEST in sizes}

        def upload_new(parts: list[dict[str, Any]]) -> None:
            if state["manifest_online"]:
                # The class is being rewritten: it must stop looking complete before any part changes.
                fs.rm_file(f"{rdir}/{MANIFEST}")
                state["manifest_online"] = False
            for p in parts:
                name = p["file"]
                st = os.stat(scdir / name)
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                if (name in mirrored and st.st_blocks == 0 and st.st_size > 0) or uploaded.get(name) == key:
                    continue
                remote.upload(fs, scdir / name, f"{rdir}/{name}")
                uploaded[name] = key  # not again at the next checkpoint
            if (scdir / QUARANTINE).exists():
                remote.upload(fs, scdir / QUARANTINE, f"{rdir}/{QUARANTINE}")

        def on_checkpoint() -> None:
            doc = json.loads((scdir / STATE).read_bytes())
            upload_new(doc["parts"])
            remote.upload(fs, scdir / STATE, f"{rdir}/{STATE}")

        res = fetch_class(word, sroot, opts, stop=stop, on_checkpoint=on_checkpoint)
        if res.status != "unchanged":
            manifest = json.loads((scdir / MANIFEST).read_bytes())
            upload_new(manifest["parts"])
            remote.upload(fs, scdir / MANIFEST, f"{rdir}/{MANIFEST}")  # last: now the class is complete
            keep = {p["file"] for p in manifest["parts"]} | {MANIFEST}
            if manifest.get("quarantine"):
                keep.add(QUARANTINE)
            remote.remove_owned(fs, rdir, OWN_FILES, keep=keep)  # the resume state, parts of an older fetch
        return res
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _ls(fs: Any, folder: str) -> list[dict[str, Any]]:
    try:
        return list(fs.ls(folder, detail=True, refresh=True))
    except FileNotFoundError:
        return []


# ------------------------------------------------------------------------------------------------ driver


@contextlib.contextmanager
def _claimed(out: str | os.PathLike[str], overwrite: bool) -> Iterator[Path | str]:
    """Claim ``out`` (marker) and hold its writer lock on this (the client's) side for the block."""
    if remote.is_remote(out):
        url = os.fspath(out).rstrip("/")
        remote.claim_remote(url, "fetch", overwrite=overwrite)
        with remote.remote_lock(url, "fetch"):
            yield url
    else:
        path = claim_output(remote.local_path(out), "fetch", overwrite=overwrite, adopt=_is_fetch_output)
        with output_lock(path, "fetch"):
            yield path


def fetch_with_executor(
    words: Sequence[str],
    out: str | os.PathLike[str],
    opts: FetchOptions,
    executor: Executor | None,
    *,
    concurrency: int = 4,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> FetchResult:
    """The driver of :func:`quickdraw.pipeline.fetch.fetch` when an executor is given or ``out`` is a URL.

    Same outcome rules as the local driver: a class failing on its own is ``failed``; a source-wide error
    stops the rest (``FetchResult.error``); ``--strict``'s first bad record raises; Ctrl-C stops the running
    tasks at a checkpoint (Dask workers poll a stop event) and is re-raised. Progress comes from the tasks'
    results: one ``done`` event per class as it finishes.
    """
    own_pool = executor is None
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fetch-class")
    try:
        with _claimed(out, overwrite) as target:
            return _drive(list(words), target, opts, executor, progress)
    finally:
        if own_pool:
            executor.shutdown(wait=False, cancel_futures=True)


def _drive(words: list[str], target: Path | str, opts: FetchOptions, executor: Executor,
           progress: Progress | None) -> FetchResult:
    flag, stop = stop_signal(executor)
    out_str = os.fspath(target)
    futures: list[Future[TaskOutcome]] = [executor.submit(fetch_class_task, w, out_str, opts, flag) for w in words]
    index = {id(f): i for i, f in enumerate(futures)}
    results: list[ClassResult | None] = [None] * len(words)
    fatal: SourceError | None = None
    try:
        pending = set(futures)
        while pending:
            done, pending = wait_futures(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: index[id(f)]):
                i = index[id(f)]
                if f.cancelled():
                    continue
                res, wide, strict = f.result()
                if strict is not None:
                    err = BadRecordError(strict[0], strict[1], strict[2])
                    err.args = (strict[3],)
                    raise err
                if wide:
                    if fatal is None:
                        fatal = SourceError(res.error or "", url=res.url, source_wide=True)
                        stop(f"the source cannot be read: see the error of {res.word}")
                        for g in pending:
                            g.cancel()
                    else:
                        res = ClassResult(res.word, res.url, "stopped", error="stopped: the source cannot be read")
                results[i] = res
                if progress is not None:
                    info: dict[str, Any] = {"bytes": res.size, "size": res.size, "accepted": res.accepted,
                                            "status": res.status}
                    if res.error:
                        info["error"] = res.error
                    progress(res.word, "done", info)
    except BaseException as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else (
            "another class failed under --strict" if isinstance(exc, BadRecordError)
            else f"another class failed: {type(exc).__name__}")
        stop(reason)
        for f in futures:
            f.cancel()
        _drain(futures)
        raise
    out_results = []
    for w, r in zip(words, results):
        if r is None:
            why = "the source cannot be read" if fatal is not None else "cancelled"
            r = ClassResult(w, class_url(opts.source, w, FORMATS[opts.format][1]), "not_attempted",
                            error=f"not attempted: {why}")
        out_results.append(r)
    return FetchResult(target, out_results, fatal)


def _drain(futures: list[Future[TaskOutcome]]) -> None:
    """Give running tasks (told to stop) up to DRAIN_WAIT seconds to checkpoint; a second Ctrl-C ends it."""
    end = time.monotonic() + DRAIN_WAIT
    try:
        while time.monotonic() < end and not all(f.done() for f in futures):
            wait_futures(futures, timeout=0.1)
    except KeyboardInterrupt:
        pass
