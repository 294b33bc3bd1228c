"""Opening sources: any fsspec URL, with the public bucket read anonymously.

The GCS endpoint can be pointed at a mirror or an emulator with ``QUICKDRAW_GCS_ENDPOINT`` (or gcsfs's own
``STORAGE_EMULATOR_HOST``).
"""

from __future__ import annotations

import logging
import os
import random
import time
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any

# gcsfs 2026.x probes for hierarchical-namespace buckets on every call; against an emulator that probe
# stalls 60 s. It must be off before gcsfs is imported, so it is set when this module is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import fsspec  # noqa: E402

from quickdraw.errors import SourceError  # noqa: E402

__all__ = [
    "DEFAULT_SOURCE",
    "ObjectInfo",
    "class_url",
    "open_source",
    "read_range",
    "stat_object",
]

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "gs://quickdraw_dataset/full/simplified"
ENDPOINT_ENV = "QUICKDRAW_GCS_ENDPOINT"

# What gcsfs already does, and what this module adds (measured against a fault-injecting proxy in
# tests/integration/test_reliability_network.py):
# * gcsfs retries each HTTP call 6 times on 408/429/5xx, dropped connections and payload errors, sleeping
#   1, 2, 4, 8, 16 s (+ up to 1 s jitter) between tries; that schedule is fixed in its decorator.
# * It does not retry a request timeout (aiohttp raises asyncio.TimeoutError, which it does not treat as
#   transient), nor notice a body cut short when the server sent no Content-Length, and nothing bounds the
#   total time of a call. Those three are handled here: every call gets the remaining deadline as its
#   overall timeout, and read_range retries on top, resuming after the bytes it already holds.
READ_DEADLINE_ENV = "QUICKDRAW_READ_DEADLINE"  # total seconds one ranged read (or stat) may take, retries included
REQUEST_TIMEOUT_ENV = "QUICKDRAW_REQUEST_TIMEOUT"  # seconds one HTTP request may stay silent
RETRY_BASE_ENV = "QUICKDRAW_RETRY_BASE"  # first backoff of our own retries, doubling up to 30 s


def _env_float(name: str, default: float) -> float:
    # Read at call time, not import time, so a notebook or test can tighten them without reloading.
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("ignoring %s=%r: not a number", name, os.environ.get(name))
        return default


def read_deadline() -> float:
    """Seconds a ranged read or a stat may take in total, retries included (``QUICKDRAW_READ_DEADLINE``)."""
    return _env_float(READ_DEADLINE_ENV, 300.0)


@dataclass(frozen=True)
class ObjectInfo:
    """Identity of a source object: a changed object (new generation / etag / size) is refetched."""

    url: str
    size: int
    etag: str | None
    generation: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _protocol(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


def open_source(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return ``(filesystem, path)`` for a source URL; ``gs://`` is anonymous unless a token is configured."""
    proto = _protocol(url)
    kwargs: dict[str, Any] = {}
    if proto in ("gs", "gcs"):
        kwargs["token"] = os.environ.get("QUICKDRAW_GCS_TOKEN", "anon")
        # Without a per-request timeout a stalled connection hangs forever: gcsfs retries errors, not silence.
        kwargs["requests_timeout"] = _env_float(REQUEST_TIMEOUT_ENV, 60.0)
        endpoint = os.environ.get(ENDPOINT_ENV) or os.environ.get("STORAGE_EMULATOR_HOST")
        if endpoint:
            kwargs["endpoint_url"] = endpoint
    fs, path = fsspec.core.url_to_fs(url, **kwargs)
    return fs, path


def class_url(source: str, word: str, ext: str = "ndjson") -> str:
    """The URL of one class's file under ``source``; names with spaces are quoted where the scheme needs it."""
    base = source.rstrip("/")
    if _protocol(base) in ("http", "https"):
        return f"{base}/{urllib.parse.quote(word)}.{ext}"
    return f"{base}/{word}.{ext}"


def _backoff(attempt: int) -> float:
    base = _env_float(RETRY_BASE_ENV, 0.5)
    return min(30.0, base * 2 ** min(attempt - 1, 6)) * (0.5 + random.random() / 2)


def _bounded(fs: fsspec.AbstractFileSystem, deadline: float) -> dict[str, Any]:
    # fsspec's sync wrapper takes `timeout=` for async filesystems and cancels the call (gcsfs's own
    # retries and backoff sleeps included) when it runs out; sync filesystems would pass it on to open().
    if getattr(fs, "async_impl", False):
        return {"timeout": max(0.05, deadline - time.monotonic())}
    return {}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        # Our deadline cancelled the call, possibly while gcsfs was still backing off between its retries.
        return "no complete answer before the deadline (server silent, or still failing when gcsfs retried)"
    return f"{type(exc).__name__}: {exc}"


def _give_up(deadline: float, attempt: int) -> tuple[bool, float]:
    wait = _backoff(attempt)
    return time.monotonic() + wait > deadline, wait


def _permanent(exc: BaseException) -> bool:
    """Errors that no retry can fix (no permission, a bad request or URL): fail at once, not after the deadline."""
    if isinstance(exc, (PermissionError, ValueError, NotImplementedError)):
        return True
    # gcsfs reports 403 as a plain OSError("Forbidden: ...").
    return isinstance(exc, OSError) and str(exc).startswith("Forbidden")


def _retry_or_raise(exc: BaseException, attempt: int, deadline: float, url: str, where: str) -> None:
    """After failed attempt number ``attempt``: sleep the backoff, or raise :class:`SourceError` if the error is
    permanent or the deadline would pass. ``where`` (e.g. " at byte 123") goes into messages."""
    if _permanent(exc):
        raise SourceError(f"cannot read {url}{where}: {_describe(exc)}") from None
    stop, wait = _give_up(deadline, attempt)
    if stop:
        raise SourceError(
            f"giving up on {url}{where} after {attempt} attempt(s) ({read_deadline():g} s deadline): {_describe(exc)}"
        ) from None
    log.warning("%s%s failed (%s: %s); retry %d in %.1fs", url, where, type(exc).__name__, exc, attempt, wait)
    time.sleep(wait)


def stat_object(url: str) -> ObjectInfo:
    """Size and version identity of one object; a clear :class:`SourceError` if it is missing or unreachable.

    Transient failures are retried with backoff until ``QUICKDRAW_READ_DEADLINE`` runs out.
    """
    fs, path = open_source(url)
    deadline = time.monotonic() + read_deadline()
    attempt = 0
    while True:
        try:
            info = fs.info(path, **_bounded(fs, deadline))
            break
        except FileNotFoundError:
            raise SourceError(f"source object not found: {url}") from None
        except Exception as exc:  # network stacks raise many types; all mean the same to the user
            attempt += 1
            _retry_or_raise(exc, attempt, deadline, url, "")
    if info.get("type") == "directory":
        raise SourceError(f"source is a directory, expected a file: {url}")
    etag = info.get("etag") or info.get("md5Hash") or info.get("ETag")
    gen = info.get("generation")
    if etag is None and "mtime" in info:
        etag = f"mtime:{info['mtime']}"
    elif etag is None and "created" in info:
        etag = f"mtime:{info['created']}"
    return ObjectInfo(url=url, size=int(info["size"]), etag=str(etag) if etag else None,
                      generation=str(gen) if gen is not None else None)


def read_range(fs: fsspec.AbstractFileSystem, path: str, start: int, end: int, url: str) -> bytes:
    """Read ``[start, end)`` of an object, retrying transient failures with backoff under a total deadline.

    Bytes already received are kept: after a body cut short, the next request starts at the first missing
    byte, so the result is exactly the requested range and nothing is parsed twice. Gives up with a
    :class:`SourceError` naming the URL and byte offset once ``QUICKDRAW_READ_DEADLINE`` seconds are spent.
    """
    deadline = time.monotonic() + read_deadline()
    buf = bytearray()
    attempt = 0
    while True:
        pos = start + len(buf)
        try:
            data = fs.cat_file(path, start=pos, end=end, **_bounded(fs, deadline))
            if len(data) > end - pos:
                # A server that ignores Range sends the wrong bytes, not too many of the right ones.
                raise OSError(f"got {len(data)} bytes for a {end - pos}-byte range at offset {pos}")
            if not buf and len(data) == end - pos:
                return bytes(data)  # the common case: one complete answer, no copy into `buf`
            buf += data
            if len(buf) == end - start:
                return bytes(buf)
            # A short body (connection dropped mid-stream, no Content-Length to tell) is transient.
            raise OSError(f"short read: got {len(data)} of {end - pos} bytes at offset {pos}")
        except FileNotFoundError:
            raise SourceError(f"source object not found: {url}") from None
        except Exception as exc:
            attempt += 1
            _retry_or_raise(exc, attempt, deadline, url, f" at byte {start + len(buf)}")
