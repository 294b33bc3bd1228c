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

# Bound on the total time one ranged read may spend across retries (gcsfs retries each HTTP call 6 times
# with backoff, but has no bound on the total; a stalled mirror would otherwise hang a run for good).
READ_DEADLINE_S = float(os.environ.get("QUICKDRAW_READ_DEADLINE", "300"))


@dataclass(frozen=True)
class ObjectInfo:
    """Identity of a source object: a changed object (new generation / etag / size) is refetched."""

    url: str
    size: int
    etag: str | None
    generation: str | None

    def to_dict(self) -> dict[str, Any]:
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
        kwargs["requests_timeout"] = float(os.environ.get("QUICKDRAW_REQUEST_TIMEOUT", "60"))
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


def stat_object(url: str) -> ObjectInfo:
    """Size and version identity of one object; a clear :class:`SourceError` if it is missing or unreachable."""
    fs, path = open_source(url)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise SourceError(f"source object not found: {url}") from None
    except Exception as exc:  # network stacks raise many types; all mean the same to the user
        raise SourceError(f"cannot reach source {url}: {type(exc).__name__}: {exc}") from None
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

    Resuming at ``start`` after a dropped connection is what makes a retry exact: nothing is re-parsed twice.
    """
    deadline = time.monotonic() + READ_DEADLINE_S
    attempt = 0
    while True:
        try:
            data = fs.cat_file(path, start=start, end=end)
            if len(data) != end - start:
                # A short body (connection dropped mid-stream) is a transient fault, not the end of the file.
                raise OSError(f"short read: got {len(data)} of {end - start} bytes at offset {start}")
            return bytes(data)
        except FileNotFoundError:
            raise SourceError(f"source object not found: {url}") from None
        except Exception as exc:
            attempt += 1
            wait = min(30.0, 0.5 * 2 ** min(attempt, 6)) * (0.5 + random.random() / 2)
            if time.monotonic() + wait > deadline:
                raise SourceError(
                    f"giving up on {url} at byte {start} after {attempt} attempts: {type(exc).__name__}: {exc}"
                ) from None
            log.warning("read of %s [%d, %d) failed (%s); retry %d in %.1fs", url, start, end, exc, attempt, wait)
            time.sleep(wait)
