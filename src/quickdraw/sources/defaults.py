"""Default source locations and the names of the environment knobs, with no heavy imports.

Kept apart from :mod:`quickdraw.sources.fs` (which imports fsspec) so that the CLI can show them in ``--help``
without loading any I/O stack.
"""

from __future__ import annotations

__all__ = ["BINARY_SOURCE", "DEFAULT_SOURCE", "ENDPOINT_ENV", "RAW_SOURCE", "READ_DEADLINE_ENV",
           "REQUEST_TIMEOUT_ENV", "RETRY_BASE_ENV", "TOKEN_ENV"]

#: The public bucket folder of each source format.
DEFAULT_SOURCE = "gs://quickdraw_dataset/full/simplified"
BINARY_SOURCE = "gs://quickdraw_dataset/full/binary"
RAW_SOURCE = "gs://quickdraw_dataset/full/raw"

ENDPOINT_ENV = "QUICKDRAW_GCS_ENDPOINT"  # a GCS mirror or emulator, e.g. http://127.0.0.1:4443
TOKEN_ENV = "QUICKDRAW_GCS_TOKEN"  # gcsfs credentials; "anon" (the default) for the public bucket
READ_DEADLINE_ENV = "QUICKDRAW_READ_DEADLINE"  # total seconds one ranged read (or stat) may take, retries included
REQUEST_TIMEOUT_ENV = "QUICKDRAW_REQUEST_TIMEOUT"  # seconds one HTTP request may stay silent
RETRY_BASE_ENV = "QUICKDRAW_RETRY_BASE"  # first backoff of our own retries, doubling up to 30 s
