"""Errors the library raises on purpose; each message names the file, line, value or URL at fault."""

from __future__ import annotations

__all__ = ["QuickDrawError", "SourceError", "BadRecordError", "CacheError", "ConfigError", "FetchSchemaError",
           "FetchStopped", "OwnershipError"]


class QuickDrawError(Exception):
    """Base class of every error raised on purpose by quickdraw."""


class SourceError(QuickDrawError):
    """A source object is missing or unreachable (names the URL, the cause in plain words and what to do).

    ``permanent``: no retry can fix it (a host that does not resolve, a refused connection, 403/404, a server
    that ignores Range, a file truncated while read). ``source_wide``: every other object of the same source
    would fail the same way (no network, a mirror that is down, access denied), so a multi-class fetch stops
    at the first such error instead of repeating it for each class.
    """

    def __init__(self, message: str, *, url: str | None = None, permanent: bool = False,
                 source_wide: bool = False) -> None:
        super().__init__(message)
        self.url, self.permanent, self.source_wide = url, permanent or source_wide, source_wide


class ConfigError(QuickDrawError, ValueError):
    """A setting (an environment variable) with a value quickdraw cannot use (names it, its value and what is
    allowed)."""


class FetchStopped(QuickDrawError):
    """A fetch stopped on request: Ctrl-C, another class failed under ``strict``, or a source-wide error.

    What was written up to the last checkpoint is kept; the next fetch resumes from it.
    """


class BadRecordError(QuickDrawError):
    """A malformed input record under ``--strict`` (names file, line and reason)."""

    def __init__(self, url: str, line: int, reason: str, detail: str = "") -> None:
        self.url, self.line, self.reason = url, line, reason
        extra = f": {detail}" if detail else ""
        super().__init__(f"{url}:{line}: bad record ({reason}){extra}")


class CacheError(QuickDrawError):
    """A cache version is missing, incomplete or corrupt (names the file)."""


class FetchSchemaError(QuickDrawError):
    """Fetched data written in another layout than this quickdraw reads (names the manifest; re-fetch it)."""


class UnsafePathError(QuickDrawError):
    """A path read from a manifest, state file or checkpoint that is not a relative, normalized path to a
    regular file inside its folder (names the file it was read from and the entry)."""


class CheckpointError(QuickDrawError):
    """A checkpoint whose structure, sizes or values are not what this quickdraw writes (names file and field)."""


class OwnershipError(QuickDrawError):
    """An output folder quickdraw cannot prove it created, a symlink where an output folder should be, or a
    folder another quickdraw process is writing (names the folder and what to do)."""
