"""The fetch stage: stream class files from a bucket (or any fsspec URL) into Parquet, resumably.

One class at a time per worker, one chunk at a time per class: a class file is never held in memory, and
with ``max_per_class`` reading stops as soon as enough drawings are accepted (chunks shrink to fit, so the
bytes read grow with N, not with the file).

Resumability: output is written in parts, each an atomic rename, and after each part a small state file
records the byte offset, line number, counts and quarantine size reached. Chunk and part boundaries depend
only on the data and the options, so a run that is killed and restarted ends with byte-identical files.
The class manifest is written last; a class directory without one is incomplete.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, Executor, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quickdraw._io import sha256_file, write_json_atomic
from quickdraw._safety import contained, open_regular
from quickdraw._ownership import claim_output, output_lock, owned_subdir, remove_owned
from quickdraw.classes import UnknownClassError, all_classes, resolve_classes
from quickdraw.parallel import stop_signal
from quickdraw.sources import remote as _remote
from quickdraw.errors import BadRecordError, FetchStopped, OwnershipError, QuickDrawError, SourceError, UnsafePathError
from quickdraw.sources.defaults import BINARY_SOURCE, DEFAULT_SOURCE, RAW_SOURCE
from quickdraw.sources.fs import StopFlag, check_env, class_url, open_source, read_range, stat_object
from quickdraw.sources.ndjson import MAX_LINE_BYTES, QUARANTINE_RAW_BYTES, QUARANTINE_SAMPLE, Reject, parse_chunk
from quickdraw.sources.schema import DRAWING_SCHEMA, SCHEMA_VERSION

#: Source formats (``FetchOptions.format``): default source URL and file extension of each.
FORMATS = {
    "ndjson": (DEFAULT_SOURCE, "ndjson"),
    "binary": (BINARY_SOURCE, "bin"),
    "raw": (RAW_SOURCE, "ndjson"),
}

__all__ = ["ClassResult", "FetchOptions", "FetchResult", "FetchStopped", "Progress", "fetch", "fetch_class",
           "fetch_class_task", "fetch_with_executor"]

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
STATE = ".fetch-state.json"
QUARANTINE = "_quarantine.ndjson"
MIN_CHUNK = 64 << 10
GZIP_MAGIC = b"\x1f\x8b"
MIN_SPLIT_ROWS = 5_000  # the last part is split in two halves when each would have at least this many rows
BYTES_PER_DRAWING = 700  # a little above the ~500 B average, so one chunk usually covers what is still needed
_PART_NAME = re.compile(r"part-[0-9]{5,}\.parquet")
# The only files fetch ever removes from a class folder: the ones it writes (quickdraw._ownership).
OWN_FILES = ("part-*.parquet", "part-*.parquet.incomplete", "*.incomplete", MANIFEST, STATE, QUARANTINE)


class _Stop(threading.Event):
    """The stop flag the driver shares with its class tasks, with the reason they report when they stop."""

    reason = "stopped on request"

    def stop(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
            self.set()


class _Either:
    """Set when either flag is: the driver's (Ctrl-C, another class failed) or the class task's own (it is
    unwinding, so its read-ahead must not go on waiting on the network)."""

    def __init__(self, outer: StopFlag | None, own: threading.Event) -> None:
        self.outer, self.own = outer, own

    @property
    def reason(self) -> str:
        return getattr(self.outer, "reason", None) or "stopped on request"

    def is_set(self) -> bool:
        return self.own.is_set() or (self.outer is not None and self.outer.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.1 if end is None else min(0.1, end - time.monotonic())
            if left <= 0:
                return False
            self.own.wait(left)
        return True


def _result(fut: Future[bytes], stop: _Either, what: str) -> bytes:
    """``fut.result()``, but raising :class:`FetchStopped` as soon as ``stop`` is set (no uninterruptible wait)."""
    while True:
        done, _ = wait_futures([fut], timeout=0.1)
        if done:
            return fut.result()
        if stop.is_set():
            raise FetchStopped(f"{what}: {stop.reason}")


@dataclass(frozen=True)
class FetchOptions:
    """What to fetch and how. Everything except ``strict`` shapes the output and is part of its identity.

    ``format``: ``ndjson`` (simplified), ``binary`` (``full/binary/<word>.bin``, same drawings, timestamps in
    whole seconds) or ``raw`` (``full/raw``: float coordinates plus timing, written as the raw schema variant,
    or simplified as published with ``simplify``). ``source`` defaults to the bucket folder of the format.
    """

    source: str = None  # type: ignore[assignment]  # None -> the format's default folder (set below)
    max_per_class: int | None = None
    recognized_only: bool = False
    countries: tuple[str, ...] | None = None
    strict: bool = False
    part_rows: int = 25_000  # small parts keep the encoding that is left when parsing ends short (and RSS low)
    chunk_bytes: int = 4 << 20
    format: str = "ndjson"
    simplify: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown source format {self.format!r} (expected one of: {', '.join(FORMATS)})")
        if self.simplify and self.format != "raw":
            raise ValueError("simplify applies to the raw format only (--format raw --simplify)")
        bad = [c for c in self.countries or () if not (len(c) == 2 and c.isascii() and c.isalpha() and c.isupper())]
        if bad:
            # A filter value that no drawing can have would keep zero drawings of every class, silently.
            raise ValueError(f"--countries: {', '.join(repr(c) for c in bad[:5])} is not a two-letter country code "
                             f"(ISO 3166-1 alpha-2, upper case, e.g. US,GB,DE)")
        if self.source is None:
            object.__setattr__(self, "source", FORMATS[self.format][0])
        elif not str(self.source).strip():
            # "" would become "/" (the file system root) once joined with a class file name.
            raise ValueError("--source is empty: give the folder or fsspec URL holding the class files, or leave "
                             "it out for the public bucket (in params.yaml: fetch.source)")

    def identity(self) -> dict[str, Any]:
        """The options that shape the output, as stored in manifests (a change means a refetch)."""
        d = asdict(self)
        d.pop("strict")
        # Defaults are left out so that ndjson fetches made before these options keep their identity.
        if d["format"] == "ndjson":
            d.pop("format")
        if not d["simplify"]:
            d.pop("simplify")
        d["countries"] = sorted(self.countries) if self.countries else None
        return d


@dataclass
class ClassResult:
    """The outcome for one class."""

    word: str
    url: str
    status: str  # fetched | resumed | unchanged | failed | stopped (resumable) | not_attempted
    accepted: int = 0
    read: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    size: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``--json``)."""
        return asdict(self)


@dataclass
class FetchResult:
    """The outcome of a fetch: one :class:`ClassResult` per class, in the order asked."""

    out: Path | str  # a str for an fsspec URL
    classes: list[ClassResult]
    #: An error no class could get past (no network, a refused connection, access denied, a server that ignores
    #: Range): the fetch stopped at it, and the classes not yet done are ``not_attempted`` or ``stopped``.
    error: SourceError | None = None

    @property
    def failed(self) -> list[ClassResult]:
        """The classes that could not be fetched."""
        return [c for c in self.classes if c.status == "failed"]

    @property
    def incomplete(self) -> list[ClassResult]:
        """The classes without a complete output: failed, stopped or not attempted."""
        return [c for c in self.classes if c.status in ("failed", "stopped", "not_attempted")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: per-class results and totals."""
        return {
            "out": str(self.out),
            "error": str(self.error) if self.error is not None else None,
            "classes": [c.to_dict() for c in self.classes],
            "totals": {
                "accepted": sum(c.accepted for c in self.classes),
                "rejected": sum(sum(c.rejected.values()) for c in self.classes),
                "bytes_read": sum(c.bytes_read for c in self.classes),
                "failed": len(self.failed),
                "not_attempted": sum(c.status == "not_attempted" for c in self.classes),
                "stopped": sum(c.status == "stopped" for c in self.classes),
            },
        }


# progress(word, event) where event is "start" | "advance" | "done" and info holds bytes/size/accepted.
Progress = Callable[[str, str, dict[str, Any]], None]


def _coordinate_encoding(schema: pa.Schema) -> dict[str, str]:
    """``BYTE_STREAM_SPLIT`` for every list leaf of the drawing column (x, y, stroke_len; t for raw drawings)."""
    return {f"drawing.{f.name}.list.element": "BYTE_STREAM_SPLIT" for f in schema.field("drawing").type}


@functools.cache
def _encode_pool() -> pa.MemoryPool:
    """The allocator for combining and encoding parts: jemalloc where pyarrow has it.

    Two parts are encoded at once on two threads. In a two-thread micro-benchmark, pairs of writes under
    pyarrow's default (mimalloc) took 1.1-1.5x one write's time, under jemalloc about 1.1x; end to end the
    gain was within the machine's noise and peak RSS ~20 MB lower, so it is kept but not relied on.
    """
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # wheels built without jemalloc (Windows, macOS)
        return pa.default_memory_pool()


def _write_part(path: Path, table: pa.Table, word: str, url: str, pool: pa.MemoryPool | None = None) -> None:
    meta = {b"quickdraw": json.dumps({"schema_version": SCHEMA_VERSION, "word": word, "source_url": url}).encode()}
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(path.name + ".incomplete")
    try:
        # Statistics and dictionaries only where they help readers: on the nested drawing column they
        # cost a third of the write time and no query uses them. Parquet stores uint8 as INT32, so plain
        # coordinates hand zstd four bytes a value; byte-stream-split puts the three zero bytes in runs of
        # their own, which zstd skims: 40 % less write time and 20 % smaller files, same Arrow schema.
        pq.write_table(table, tmp, compression="zstd", row_group_size=50_000,
                       write_statistics=["key_id", "timestamp", "recognized", "n_strokes", "n_points"],
                       use_dictionary=["word", "countrycode"], column_encoding=_coordinate_encoding(table.schema),
                       memory_pool=pool)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a half-written part behind
        raise


def _part_entry(cdir: Path, name: str, rows: int) -> dict[str, Any]:
    """A part as the state file and the manifest list it: name, rows, bytes and sha256 of the file on disk."""
    path = cdir / name
    return {"file": name, "rows": rows, "size": path.stat().st_size, "sha256": sha256_file(path)}


def _apply_filters(table: pa.Table, opts: FetchOptions, filtered: dict[str, int]) -> pa.Table:
    if opts.recognized_only and table.num_rows:
        keep = table.column("recognized")
        filtered["recognized"] = filtered.get("recognized", 0) + table.num_rows - int(pc.sum(keep).as_py() or 0)
        table = table.filter(keep)
    if opts.countries and table.num_rows:
        keep = pc.is_in(table.column("countrycode"), value_set=pa.array(sorted(opts.countries)))
        keep = pc.fill_null(keep, False)
        filtered["country"] = filtered.get("country", 0) + table.num_rows - int(pc.sum(keep).as_py() or 0)
        table = table.filter(keep)
    return table


def fetch_class(
    word: str,
    out: Path,
    opts: FetchOptions,
    progress: Progress | None = None,
    *,
    stop: StopFlag | None = None,
    overwrite: bool = False,
    on_checkpoint: Callable[[], None] | None = None,
) -> ClassResult:
    """Fetch one class into ``out/<word>/``; skips the work if a complete, identical fetch is already there.

    ``word`` must be one of the 345 categories; ``out`` must be a fetch output folder (or new, or empty) unless
    ``overwrite`` (see :mod:`quickdraw._ownership`). Callers other than :func:`fetch` hold
    ``quickdraw._ownership.output_lock(out, "fetch")`` themselves if other processes may write ``out``.

    Raises :class:`SourceError` if the object is missing or unreachable, :class:`OwnershipError` for an output
    folder quickdraw did not create, and :class:`BadRecordError` on the first bad record when ``opts.strict``
    is set. Setting ``stop`` (a :class:`threading.Event`) makes it checkpoint and raise :class:`FetchStopped`
    within a fraction of a second, whatever it is waiting on (a stalled request, a retry's backoff).
    ``on_checkpoint()`` is called after each durable checkpoint (its parts, quarantine lines and the state
    file naming them are on disk): the remote-output task uploads them from there.
    """
    t0 = time.monotonic()
    if word not in _class_set():
        # The same check as the CLI's: a word is a folder name below `out`, so '../victim' must never get here.
        resolve_classes([word])  # raises with the closest valid names
        raise UnknownClassError(word, [])  # a preset: fetch() expands those, fetch_class takes one category
    root = claim_output(out, "fetch", overwrite=overwrite, adopt=_is_fetch_output)
    url = class_url(opts.source, word, FORMATS[opts.format][1])
    own_stop = threading.Event()
    halt = _Either(stop, own_stop)
    info = stat_object(url, halt)
    identity = {
        "schema_version": SCHEMA_VERSION,
        "source": {"size": info.size, "etag": info.etag, "generation": info.generation},
        "options": opts.identity(),
    }
    cdir = owned_subdir(root, word)
    notify = progress or (lambda *_: None)

    manifest_path = cdir / MANIFEST
    if manifest_path.exists() or manifest_path.is_symlink():
        # Data, not ours until proven: a FIFO here would block the read forever, a symlink point anywhere.
        if manifest_path.is_symlink():
            raise UnsafePathError(f"{manifest_path} is a symlink: quickdraw does not follow it; remove it and re-run")
        try:
            with open_regular(manifest_path, f"{word}: manifest") as f:
                old = json.loads(f.read(64 << 20))
        except ValueError:
            old = {}
        if not isinstance(old, dict):
            old = {}
        # "unchanged" only if the parts the manifest names are still there as written (else: fetch again).
        if old.get("identity") == identity and _state_parts_ok(cdir, old) and isinstance(old.get("counts"), dict):
            c = old["counts"]
            notify(word, "done", {"bytes": info.size, "size": info.size, "accepted": c["accepted"], "status": "unchanged"})
            return ClassResult(word, url, "unchanged", c["accepted"], c["read"], c["filtered"], c["rejected"],
                               0, info.size, time.monotonic() - t0, c["stopped_early"])

    state: dict[str, Any] | None = None
    state_path = cdir / STATE
    if state_path.exists():
        try:
            state = json.loads(state_path.read_bytes()[: 64 << 20]) if state_path.is_file() else None
        except ValueError:
            state = None
        if not _state_well_formed(state) or state.get("identity") != identity:  # type: ignore[union-attr]
            state = None
        if state is not None and not _state_parts_ok(cdir, state):
            # A part the last checkpoint names is gone or changed (a rename lost in a power cut, a hand edit):
            # its recorded hash cannot be trusted, so start over rather than write a wrong manifest.
            log.warning("%s: a part named in %s is missing or changed; fetching the class again", word, STATE)
            state = None
    if state is None:
        # A different source version or options: nothing already written can be reused. Only what fetch
        # writes is removed; anything else in the folder is not ours to delete and is left alone.
        remove_owned(cdir, OWN_FILES)
        state = {"identity": identity, "offset": 0, "line": 1, "accepted": 0, "read": 0, "filtered": {},
                 "rejected": {}, "parts": [], "quarantine_bytes": 0, "stopped": False}
        status = "fetched"
    else:
        status = "resumed"
        log.info("resuming %s at byte %d (line %d)", word, state["offset"], state["line"])
    # Whatever a killed run wrote after its last checkpoint is dropped and redone.
    keep = {p["file"] for p in state["parts"]}
    for p in cdir.glob("part-*"):
        if p.name not in keep:
            p.unlink()
    for p in cdir.glob("*.incomplete"):  # pathlib's "*" matches dot-files too
        p.unlink()  # temp files of a write that was killed before its rename
    qpath = cdir / QUARANTINE
    if qpath.exists():
        with open(qpath, "rb+") as f:
            f.truncate(state["quarantine_bytes"])

    fs, path = open_source(url)
    offset: int = state["offset"]
    line: int = state["line"]
    accepted: int = state["accepted"]
    read: int = state["read"]
    filtered: dict[str, int] = dict(state["filtered"])
    rejected: dict[str, int] = dict(state["rejected"])
    parts: list[dict[str, Any]] = list(state["parts"])
    q_bytes: int = state["quarantine_bytes"]
    bytes_read = 0
    buffered: list[pa.Table] = []
    buffered_rows = 0
    pending_q: list[bytes] = []
    stopped: bool = state.get("stopped", False)  # the cap was reached: a resume only has the manifest to write
    cap = opts.max_per_class

    def strict_error(ln: int, reason: str, detail: str) -> None:
        raise BadRecordError(url, ln, reason, detail)

    # Parquet encoding of the nested drawing column costs more than parsing, so parts are encoded by two
    # background threads while the next chunks are parsed (pyarrow releases the GIL). Checkpoints complete
    # strictly in order: a part's quarantine lines and the state file that names it are written only once it
    # and every earlier part are on disk, so a kill still leaves a clean checkpoint. At most two parts are
    # in flight, which bounds memory.
    writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"fetch-write-{word}")
    in_flight: deque[tuple[list[Future[dict[str, Any]]], list[str], list[bytes], dict[str, Any]]] = deque()
    n_parts = len(parts)

    def write(tables: list[pa.Table], name: str) -> dict[str, Any]:
        pool = _encode_pool()
        table = pa.concat_tables(tables).combine_chunks(memory_pool=pool)
        _write_part(cdir / name, table, word, url, pool)
        rows = table.num_rows
        del table, tables
        # Arrow's allocator keeps freed pages for reuse; handing them back after each part keeps the peak RSS
        # flat however large the class file is.
        pool.release_unused()
        # Hashed here, while the next chunks are parsed, rather than all at the end for the manifest.
        return _part_entry(cdir, name, rows)

    def complete_oldest() -> None:
        # The checkpoint leaves the queue only once it is durable: if a write failed, it stays at the head and
        # every later checkpoint stays behind it, so the state file can never skip a part.
        nonlocal q_bytes
        futs, _, q_lines, snap = in_flight[0]
        done = [f.result() for f in futs]  # re-raises a failed write (full disk, ...) in this thread
        blob = b"".join(q_lines)
        if blob:
            with open(qpath, "ab") as f:
                f.truncate(q_bytes)  # idempotent: a retried checkpoint cannot append its lines twice
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
        write_json_atomic(state_path, {"identity": identity, **snap, "parts": parts + done,
                                       "quarantine_bytes": q_bytes + len(blob)})
        parts.extend(done)
        q_bytes += len(blob)
        in_flight.popleft()
        if on_checkpoint is not None:
            on_checkpoint()

    def checkpoint(final: bool = False) -> None:
        nonlocal buffered, buffered_rows, pending_q, n_parts
        names: list[str] = []
        futs: list[Future[dict[str, Any]]] = []
        if buffered_rows:
            # Nothing is parsed after the last part, so it would be encoded on one core while the other idles:
            # split it in two parts encoded side by side. Both are one checkpoint (the state file names them
            # together), so a kill between them redoes both, and the split depends only on the data.
            pieces = 2 if final and buffered_rows >= 2 * MIN_SPLIT_ROWS else 1
            table = pa.concat_tables(buffered)
            bounds = [buffered_rows * i // pieces for i in range(pieces + 1)]
            for lo, hi in zip(bounds, bounds[1:]):
                names.append(f"part-{n_parts:05d}.parquet")
                n_parts += 1
                futs.append(writer.submit(write, [table.slice(lo, hi - lo)], names[-1]))
        snap = {"offset": offset, "line": line, "accepted": accepted, "read": read, "stopped": stopped,
                "filtered": dict(filtered), "rejected": dict(rejected)}
        in_flight.append((futs, names, pending_q, snap))
        buffered, buffered_rows, pending_q = [], 0, []
        while len(in_flight) > 2:
            complete_oldest()

    # Reading. Without a cap, reads are windows aligned to multiples of chunk_bytes, fetched one ahead on a
    # thread while the current chunk is parsed; a chunk is the bytes carried over from the last window plus
    # the new one, up to its last whole line. Aligned windows make chunk boundaries, and so part boundaries,
    # the same after a resume (which starts at a chunk end) as in an uninterrupted run. With a cap, each read
    # asks only for what the drawings still needed should take, and starts afresh at the chunk end.
    read_pos = offset
    carry = b""
    work = bytearray()
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fetch-read-{word}")
    ahead: Future[bytes] | None = None

    def read_next(grow: int = 1) -> bytes:
        nonlocal read_pos
        if cap is None:
            end = min(info.size, (read_pos // opts.chunk_bytes + 1) * opts.chunk_bytes)
        else:
            want = min(opts.chunk_bytes, max(MIN_CHUNK, (cap - accepted) * BYTES_PER_DRAWING)) * grow
            end = min(info.size, read_pos + want)
        start, read_pos = read_pos, end
        return read_range(fs, path, start, end, url, stop=halt)

    def next_window(grow: int = 1) -> tuple[bytes, bool]:
        """The next window (the one read ahead, if any) and whether it ends the file; starts the read after it."""
        nonlocal ahead, bytes_read
        if halt.is_set():
            raise FetchStopped(f"{word}: stopped at byte {offset} ({halt.reason})")
        data = _result(ahead, halt, word) if ahead is not None else read_next(grow)
        at_eof = read_pos == info.size  # read before the next read-ahead moves read_pos
        ahead = reader.submit(read_next) if cap is None and not at_eof else None
        bytes_read += len(data)
        return data, at_eof

    # Raw lines are ~10x larger per drawing than simplified ones, hence their larger limit (sources/raw.py).
    line_limit = 16 * MAX_LINE_BYTES if opts.format == "raw" else MAX_LINE_BYTES
    notify(word, "start", {"bytes": offset, "size": info.size, "accepted": accepted, "status": status})
    try:
        grow = 1
        while offset < info.size and not stopped:
            data, at_eof = next_window(grow)
            if offset == 0 and not carry and data[:2] == GZIP_MAGIC and opts.format != "binary":
                # Byte-offset resume cannot work inside a gzip stream, and the public bucket serves plain
                # text: a gzip file here is a misconfigured mirror, so fail the class instead of guessing.
                raise SourceError(f"{url} is gzip-compressed (starts with bytes 1f 8b), expected plain "
                                  f"{opts.format} text: decompress the mirror's files or point --source at plain ones")
            # The carried-over bytes and the new window are put together in one buffer reused from chunk to
            # chunk, and the chunk is a view of it: a fresh chunk-sized object each time (the concatenation,
            # then the slice) costs more in kernel page faults than the copy itself.
            n = len(carry) + len(data)
            if len(work) < n:
                work = bytearray(n)
            work[: len(carry)] = carry
            work[len(carry) : n] = data
            view = memoryview(work)[:n]
            if opts.format == "binary":
                from quickdraw.sources.binary import parse_binary_chunk  # numba: only for the formats that need it

                # No separator: a chunk ends after the last whole record; the rest is carried to the next read.
                res, cut = parse_binary_chunk(bytes(view), line, word=word, at_eof=at_eof, sample=QUARANTINE_SAMPLE,
                                              strict_error=strict_error if opts.strict else None)
            else:
                cut = n if at_eof else work.rfind(b"\n", 0, n) + 1
            if cut == 0 and opts.format != "binary" and n > line_limit:
                # No newline in more than the line limit: a broken or hostile record. Stream past it to its end
                # without holding it (a 500 MB line costs one window of memory, not 500 MB), and quarantine it.
                head, size = bytes(view[:QUARANTINE_RAW_BYTES]), n
                carry = b""
                while ahead is not None or read_pos < info.size:
                    data, at_eof = next_window()
                    nl = data.find(b"\n")
                    if nl >= 0:
                        size += nl + 1
                        carry = bytes(data[nl + 1 :])
                        break
                    size += len(data)
                detail = f"a line of {size:,} bytes, over the {line_limit:,}-byte limit (skipped while streaming)"
                if opts.strict:
                    strict_error(line, "too_large", detail)
                if rejected.get("too_large", 0) < QUARANTINE_SAMPLE:
                    pending_q.append(json.dumps(Reject(line, "too_large", detail, head, size).to_json(url),
                                                ensure_ascii=False).encode() + b"\n")
                rejected["too_large"] = rejected.get("too_large", 0) + 1
                read += 1
                offset += size
                line += 1
                if cap is not None:
                    carry, read_pos = b"", offset
                grow = 1
                continue
            if cut == 0:
                carry = bytes(view)  # one record longer than the read: read on until it ends
                grow *= 2
                continue
            grow = 1
            chunk, carry = view[:cut], bytes(view[cut:])
            if cap is not None:
                carry, read_pos = b"", offset + cut
            if opts.format == "ndjson":
                res = parse_chunk(chunk, line, word=word, at_eof=at_eof, sample=QUARANTINE_SAMPLE,
                                  strict_error=strict_error if opts.strict else None)
            elif opts.format == "raw":
                from quickdraw.sources.raw import parse_raw_chunk

                res = parse_raw_chunk(bytes(chunk), line, word=word, at_eof=at_eof, sample=QUARANTINE_SAMPLE,
                                      strict_error=strict_error if opts.strict else None, simplify=opts.simplify)
            read += res.n_lines
            # Counts stay exact; the quarantine keeps the first QUARANTINE_SAMPLE lines of each reason. How
            # many a reason already has follows from its count, so a resumed run samples the same lines.
            for r in res.rejects:
                if rejected.get(r.reason, 0) < QUARANTINE_SAMPLE:
                    pending_q.append(json.dumps(r.to_json(url), ensure_ascii=False).encode() + b"\n")
                rejected[r.reason] = rejected.get(r.reason, 0) + 1
            for reason, n in res.counts().items():
                kept = sum(1 for r in res.rejects if r.reason == reason)
                rejected[reason] = rejected.get(reason, 0) + n - kept
            table = _apply_filters(res.table, opts, filtered)
            if cap is not None and accepted + table.num_rows >= cap:
                table = table.slice(0, cap - accepted)
                stopped = True
            if table.num_rows:
                buffered.append(table)
                buffered_rows += table.num_rows
                accepted += table.num_rows
            offset += cut
            # `line` counts records in binary files (1-based), lines in ndjson.
            if opts.format == "binary":
                line += res.n_lines
            elif res.lines_spanned is not None:
                line += res.lines_spanned  # the parser already split the chunk into lines
            else:
                line += work.count(b"\n", 0, cut) + (0 if work[cut - 1] == 10 else 1)
            if buffered_rows >= opts.part_rows or stopped or offset >= info.size:
                checkpoint(final=stopped or offset >= info.size)
            notify(word, "advance", {"bytes": offset, "size": info.size, "accepted": accepted, "status": status})
        if buffered_rows or pending_q:
            checkpoint(final=True)
        while in_flight:
            complete_oldest()
    except BaseException:
        own_stop.set()  # a read-ahead still waiting on the network gives up now
        if ahead is not None:
            ahead.cancel()
        # Keep what is already durable so a rerun resumes from it: complete, in order, the checkpoints
        # whose parts were written; stop at the first that was not.
        try:
            while in_flight:
                complete_oldest()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    finally:
        reader.shutdown(wait=True)
        writer.shutdown(wait=True)
    if not parts:
        # Zero accepted drawings is a valid outcome (e.g. a country filter); keep the schema readable.
        schema = DRAWING_SCHEMA
        if opts.format == "raw" and not opts.simplify:
            from quickdraw.sources.raw import RAW_DRAWING_SCHEMA

            schema = RAW_DRAWING_SCHEMA
        _write_part(cdir / "part-00000.parquet", schema.empty_table(), word, url)
        parts.append(_part_entry(cdir, "part-00000.parquet", 0))

    counts = {"read": read, "accepted": accepted, "filtered": filtered, "rejected": rejected, "stopped_early": stopped}
    manifest = {
        "word": word,
        "source_url": url,
        "identity": identity,
        "options": opts.identity(),
        "counts": counts,
        "parts": parts,
        "quarantine": {"file": QUARANTINE, "records": sum(rejected.values())} if rejected else None,
        "schema_version": SCHEMA_VERSION,
    }
    write_json_atomic(manifest_path, manifest)
    state_path.unlink(missing_ok=True)
    notify(word, "done", {"bytes": offset, "size": info.size, "accepted": accepted, "status": status})
    return ClassResult(word, url, status, accepted, read, filtered, rejected, bytes_read, info.size,
                       time.monotonic() - t0, stopped)


def fetch(
    classes: str | Sequence[str],
    out: str | os.PathLike[str],
    options: FetchOptions | None = None,
    *,
    concurrency: int = 4,
    progress: Progress | None = None,
    overwrite: bool = False,
    executor: Executor | None = None,
) -> FetchResult:
    """Fetch classes (a spec such as ``"animals10"``, a comma list, ``@file``, or a list) into ``out``.

    Class names and the network settings in the environment are checked before any download, so a typo
    fails at once (with the closest valid names). ``out`` is created with an ownership marker; an existing
    folder that quickdraw did not create is refused unless ``overwrite``, and one other fetch writing it at
    the same time is refused (a lock). Classes are fetched ``concurrency`` at a time.

    Failures: a class that fails on its own (its object is missing, its reads keep failing until the
    deadline) is reported as ``failed`` with its error while the others complete and are kept. An error that
    every class would hit the same way (the host does not resolve, the connection is refused, access denied,
    a server that ignores Range) stops the fetch within seconds: it is ``FetchResult.error`` (one message
    naming the URL, the cause and the fix), the classes it stopped are ``stopped`` or ``not_attempted``, and
    classes already fetched stay. Under ``strict`` the first bad
    record raises :class:`BadRecordError`. A ``KeyboardInterrupt`` (Ctrl-C) stops every class within about a
    second, after checkpointing, and is re-raised: the next run resumes and ends byte-identical.

    ``executor`` (any :class:`concurrent.futures.Executor`: a process pool, a Dask cluster's
    ``Client.get_executor()``) runs one self-contained task per class (:func:`fetch_class_task`); the
    files are the same bytes as without it, whatever the number of workers and the order they finish in.
    ``out`` may be an fsspec URL (``gs://bucket/raw``): parts are uploaded as whole objects, each class's
    manifest last (see :func:`fetch_with_executor`).

    >>> fetch("animals10", "data/raw", FetchOptions(max_per_class=1000))  # doctest: +SKIP
    """
    opts = options or FetchOptions()
    words = resolve_classes(classes)
    check_env()
    if executor is not None or _remote.is_remote(out):
        return fetch_with_executor(words, out, opts, executor, concurrency=concurrency, progress=progress,
                                   overwrite=overwrite)
    out_path = claim_output(out, "fetch", overwrite=overwrite, adopt=_is_fetch_output)
    with output_lock(out_path, "fetch"):
        return _fetch_locked(words, out_path, opts, concurrency, progress)


def _fetch_locked(words: list[str], out_path: Path, opts: FetchOptions, concurrency: int,
                  progress: Progress | None) -> FetchResult:
    stop = _Stop()
    fatal: dict[str, SourceError] = {}  # the first source-wide error, by class: the result names it
    fatal_lock = threading.Lock()

    def one(word: str) -> ClassResult:
        url = class_url(opts.source, word, FORMATS[opts.format][1])
        if stop.is_set():
            return ClassResult(word, url, "not_attempted", error=f"not attempted: {stop.reason}")
        try:
            return fetch_class(word, out_path, opts, progress, stop=stop)
        except FetchStopped as exc:
            return ClassResult(word, url, "stopped", error=str(exc))
        except BadRecordError:
            raise
        except QuickDrawError as exc:
            if isinstance(exc, SourceError) and exc.source_wide:
                with fatal_lock:
                    if fatal:  # the classes running alongside hit the same wall: say it once, for the first
                        return ClassResult(word, url, "stopped", error=f"stopped: {stop.reason}")
                    fatal[word] = exc
                    stop.stop(f"the source cannot be read: see the error of {word}")
            if progress:
                progress(word, "done", {"status": "failed", "error": str(exc)})
            return ClassResult(word, url, "failed", error=str(exc))

    # The main thread never blocks without a timeout, so Ctrl-C reaches it at once; the tasks then see the stop
    # flag within a fraction of a second wherever they wait (fs.py: requests, backoff sleeps, the read-ahead).
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fetch-class")
    futures = [pool.submit(one, w) for w in words]
    try:
        pending = set(futures)
        while pending:
            done, pending = wait_futures(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            reason = "interrupted"
        elif isinstance(exc, BadRecordError):
            reason = "another class failed under --strict"
        else:
            reason = f"another class failed: {type(exc).__name__}"
        # Queued classes are dropped; running ones checkpoint and stop, so a rerun resumes them.
        stop.stop(reason)
        pool.shutdown(wait=False, cancel_futures=True)
        _drain(futures)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    error = next(iter(fatal.values()), None)
    return FetchResult(out_path, [f.result() for f in futures], error)


def _drain(futures: list[Future[ClassResult]]) -> None:
    """Wait for the running class tasks to wind down (they have been told to stop), without an unbounded block:
    a second Ctrl-C while waiting ends the wait."""
    try:
        while not all(f.done() for f in futures):
            wait_futures(futures, timeout=0.1)
    except KeyboardInterrupt:
        pass


@functools.cache
def _class_set() -> frozenset[str]:
    return frozenset(all_classes())


def _is_fetch_output(root: Path) -> bool:
    """A folder written by a quickdraw fetch from before ownership markers: only class folders holding a
    fetch manifest or resume state, and in them only files fetch writes."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".quickdraw")]
    if not entries:
        return False
    for d in entries:
        if d.is_symlink() or not d.is_dir() or d.name not in _class_set():
            return False
        names = [p.name for p in d.iterdir()]
        if MANIFEST not in names and STATE not in names:
            return False
        if not all(any(fnmatch.fnmatchcase(n, pat) for pat in OWN_FILES) for n in names):
            return False
    return True


_STATE_INTS = ("offset", "line", "accepted", "read", "quarantine_bytes")


def _state_well_formed(state: Any) -> bool:
    """A resume state is data a crash (or a hand) may have mangled: the fields resume reads must have the
    types and signs fetch writes, or it is discarded (a refetch) rather than crash or resume wrongly."""
    if not isinstance(state, dict):
        return False
    if not all(type(state.get(k)) is int and state[k] >= 0 for k in _STATE_INTS) or state["line"] < 1:
        return False
    for k in ("filtered", "rejected"):
        d = state.get(k)
        if not isinstance(d, dict) or not all(isinstance(r, str) and type(n) is int and n >= 0 for r, n in d.items()):
            return False
    return isinstance(state.get("parts"), list) and isinstance(state.get("stopped", False), bool)


def _state_parts_ok(cdir: Path, state: Any) -> bool:
    """Whether a resume state's parts are all still there as written: each a ``part-NNNNN.parquet`` name (a
    state file is data: '../x' or '/etc/passwd' must never be opened, hashed or deleted), a regular file
    inside the class folder, of the recorded size. Anything else means the state is discarded."""
    parts = state.get("parts") if isinstance(state, dict) else None
    if not isinstance(parts, list):
        return False
    for p in parts:
        name = p.get("file") if isinstance(p, dict) else None
        if not isinstance(name, str) or not _PART_NAME.fullmatch(name):
            return False
        try:
            st = contained(cdir, name, f"{cdir / STATE}: part entry")
        except QuickDrawError:
            return False
        if st.stat().st_size != p.get("size", -1):
            return False
    return True


# ---------------------------------------------------------------------------------------------------- executors and remote outputs
# fetch on any executor, and into fsspec URLs: the per-class task and the driver that submits it.
#
# The task (:func:`fetch_class_task`) is self-contained and picklable: a class word, the output folder as a
# string, the frozen options and a stop flag. It runs :func:`quickdraw.pipeline.fetch.fetch_class`, so every
# class is written by the same code, in the same parts, as a local fetch: byte-identical output whatever the
# number of workers and the order they finish in.
#
# Who may write what, when writes happen on workers:
#
# * The driver (the client) claims the output folder (ownership marker) and holds its writer lock for the
#   whole run; no second run starts while it lives. It cancels or stops every task before it lets go.
# * A task takes no root lock (the client holds it; a worker in another process would be refused). On a
#   local or shared folder it holds an exclusive ``flock`` on its class folder instead, so a task that
#   outlived a killed client (Dask does not interrupt a running task) and the same class of the next run
#   never write one folder at once: the second waits. A worker that is SIGKILLed loses its flock with its
#   process, so Dask's retry on another worker takes it at once and resumes from the last checkpoint.
#   (Where ``flock`` is unsupported, e.g. some NFS mounts, the task logs it and relies on the client's lock.)
# * On an object store (``gs://``, ``s3://``) a task fetches into a private local staging folder and uploads
#   after each checkpoint: new parts as whole objects, then the quarantine, then the resume state; at the
#   end the class manifest, last. What a killed task uploaded is a resumable checkpoint for the retry; a
#   class prefix is complete only once its manifest object exists.

#: Seconds a task waits for another writer of its class folder (a task of a killed run) to finish.
CLASS_LOCK_WAIT = 600.0
#: Seconds the driver waits, after Ctrl-C, for running tasks to checkpoint and stop before it lets go.
DRAIN_WAIT = 15.0

#: ``(result, source_wide, strict)``: ``strict`` holds ``(url, line, reason, message)`` of a bad record
#: under --strict (BadRecordError itself does not survive pickling: its ``__init__`` takes four arguments).
_TaskOutcome = tuple[ClassResult, bool, tuple[str, int, str, str] | None]


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


def fetch_class_task(word: str, out: str, opts: FetchOptions, stop: StopFlag | None = None) -> _TaskOutcome:
    """Fetch one class into ``out`` (a local or shared folder, or an fsspec URL) on whichever worker runs it.

    The output folder must already be claimed (the driver does it). Never raises for a class that fails on
    its own: the outcome says ``failed`` with the error, and whether every class would fail alike.
    """
    url = class_url(opts.source, word, FORMATS[opts.format][1])
    try:
        if _remote.is_remote(out):
            res = _fetch_class_remote(word, out, opts, stop)
        else:
            root = _remote.local_path(out)
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
    fs, root = _remote.output_fs(out)
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
                 for e in _ls_remote(fs, rdir) if e.get("type") != "directory"}
        docs: dict[str, Any] = {}
        for name in (MANIFEST, STATE):
            if name in sizes:
                doc = _remote.read_json(fs, f"{rdir}/{name}", f"{word}: {name}")
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
            _remote.download(fs, f"{rdir}/{QUARANTINE}", scdir / QUARANTINE)
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
                _remote.upload(fs, scdir / name, f"{rdir}/{name}")
                uploaded[name] = key  # not again at the next checkpoint
            if (scdir / QUARANTINE).exists():
                _remote.upload(fs, scdir / QUARANTINE, f"{rdir}/{QUARANTINE}")

        def on_checkpoint() -> None:
            doc = json.loads((scdir / STATE).read_bytes())
            upload_new(doc["parts"])
            _remote.upload(fs, scdir / STATE, f"{rdir}/{STATE}")

        res = fetch_class(word, sroot, opts, stop=stop, on_checkpoint=on_checkpoint)
        if res.status != "unchanged":
            manifest = json.loads((scdir / MANIFEST).read_bytes())
            upload_new(manifest["parts"])
            _remote.upload(fs, scdir / MANIFEST, f"{rdir}/{MANIFEST}")  # last: now the class is complete
            keep = {p["file"] for p in manifest["parts"]} | {MANIFEST}
            if manifest.get("quarantine"):
                keep.add(QUARANTINE)
            _remote.remove_owned(fs, rdir, OWN_FILES, keep=keep)  # the resume state, parts of an older fetch
        return res
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _ls_remote(fs: Any, folder: str) -> list[dict[str, Any]]:
    try:
        return list(fs.ls(folder, detail=True, refresh=True))
    except FileNotFoundError:
        return []


# ------------------------------------------------------------------------------------------------ driver


@contextlib.contextmanager
def _claimed_out(out: str | os.PathLike[str], overwrite: bool) -> Iterator[Path | str]:
    """Claim ``out`` (marker) and hold its writer lock on this (the client's) side for the block."""
    if _remote.is_remote(out):
        url = os.fspath(out).rstrip("/")
        _remote.claim_remote(url, "fetch", overwrite=overwrite)
        with _remote.remote_lock(url, "fetch"):
            yield url
    else:
        path = claim_output(_remote.local_path(out), "fetch", overwrite=overwrite, adopt=_is_fetch_output)
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
        with _claimed_out(out, overwrite) as target:
            return _drive_tasks(list(words), target, opts, executor, progress)
    finally:
        if own_pool:
            executor.shutdown(wait=False, cancel_futures=True)


def _drive_tasks(words: list[str], target: Path | str, opts: FetchOptions, executor: Executor,
           progress: Progress | None) -> FetchResult:
    flag, stop = stop_signal(executor)
    # Workers run in their own working folders: a relative --out means the client's (a shared mount), so it
    # is made absolute here (found by review: each worker created class folders under its own cwd). The
    # source is left as given: it is part of the output's identity, which must match a local run's.
    out_str = os.fspath(target) if _remote.is_remote(target) else os.path.abspath(_remote.local_path(target))
    futures: list[Future[_TaskOutcome]] = [executor.submit(fetch_class_task, w, out_str, opts, flag) for w in words]
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
        _drain_tasks(futures)
        raise
    out_results = []
    for w, r in zip(words, results):
        if r is None:
            why = "the source cannot be read" if fatal is not None else "cancelled"
            r = ClassResult(w, class_url(opts.source, w, FORMATS[opts.format][1]), "not_attempted",
                            error=f"not attempted: {why}")
        out_results.append(r)
    return FetchResult(target, out_results, fatal)


def _drain_tasks(futures: list[Future[_TaskOutcome]]) -> None:
    """Give running tasks (told to stop) up to DRAIN_WAIT seconds to checkpoint; a second Ctrl-C ends it."""
    end = time.monotonic() + DRAIN_WAIT
    try:
        while time.monotonic() < end and not all(f.done() for f in futures):
            wait_futures(futures, timeout=0.1)
    except KeyboardInterrupt:
        pass
