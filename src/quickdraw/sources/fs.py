"""Opening sources: any fsspec URL, with the public bucket read anonymously.

The GCS endpoint can be pointed at a mirror or an emulator with ``QUICKDRAW_GCS_ENDPOINT`` (or gcsfs's own
``STORAGE_EMULATOR_HOST``).
"""

from __future__ import annotations

import concurrent.futures
import errno
import logging
import math
import os
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any, Protocol

# gcsfs 2026.x probes for hierarchical-namespace buckets on every call; against an emulator that probe
# stalls 60 s. It must be off before gcsfs is imported, so it is set when this module is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import fsspec  # noqa: E402

from quickdraw.errors import ConfigError, FetchStopped, SourceError  # noqa: E402
from quickdraw.sources.defaults import (  # noqa: E402
    DEFAULT_SOURCE,
    ENDPOINT_ENV,
    READ_DEADLINE_ENV,
    REQUEST_TIMEOUT_ENV,
    RETRY_BASE_ENV,
    TOKEN_ENV,
)

__all__ = [
    "DEFAULT_SOURCE",
    "ObjectInfo",
    "StopFlag",
    "check_env",
    "check_reachable",
    "class_url",
    "open_source",
    "read_range",
    "stat_object",
]

log = logging.getLogger(__name__)

# What gcsfs already does, and what this module adds (measured against a fault-injecting proxy in
# tests/integration/test_reliability_network.py and test_offline.py):
# * gcsfs retries each HTTP call 6 times on 408/429/5xx, dropped connections and payload errors, sleeping
#   1, 2, 4, 8, 16 s (+ up to 1 s jitter) between tries; that schedule is fixed in its decorator.
# * It does not retry a request timeout (aiohttp raises asyncio.TimeoutError, which it does not treat as
#   transient), nor notice a body cut short when the server sent no Content-Length, and nothing bounds the
#   total time of a call. Those three are handled here: every call gets the remaining deadline as its
#   overall timeout, and read_range retries on top, resuming after the bytes it already holds.
# * It also retries what can never succeed: a host name that does not resolve and a refused connection are
#   aiohttp ClientConnectorErrors, which gcsfs.retry.is_retriable counts as transient, so with no network
#   every call costs ~31 s of backoff before anything reaches us. gcsfs has no knob for this (the tries and
#   the backoff are arguments of the retry_request decorator, applied when gcsfs.core is imported, and
#   is_retriable is a module global that patching would change for every gcsfs user in the process). So
#   before the first call to an endpoint, check_reachable resolves its host and opens one TCP connection:
#   milliseconds when the network is fine, and a clear, permanent error at once when it is not. A name or
#   connection failure that appears later, mid-run, still gets gcsfs's own ~31 s of retries (a blip), then
#   is reported as permanent.

_KNOB_DEFAULTS = {READ_DEADLINE_ENV: 300.0, REQUEST_TIMEOUT_ENV: 60.0, RETRY_BASE_ENV: 0.5}
_KNOB_MEANING = {
    READ_DEADLINE_ENV: "total seconds one ranged read or stat may take, retries included",
    REQUEST_TIMEOUT_ENV: "seconds one HTTP request may stay silent",
    RETRY_BASE_ENV: "first backoff in seconds of quickdraw's own retries",
}
_POLL = 0.1  # how often a blocked call looks at its stop flag: bounds the reaction time to Ctrl-C


def _env_seconds(name: str) -> float:
    """A positive, finite number of seconds from the environment, or the default when unset or empty.

    Read at call time, not import time, so a notebook or test can tighten them without reloading. A bad value
    is an error, not silently replaced: zero, a negative number, NaN or inf would disable a timeout or make
    a retry loop spin, and a typo should not pass unnoticed.
    """
    raw = os.environ.get(name)
    default = _KNOB_DEFAULTS[name]
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={raw!r} is not valid: {_KNOB_MEANING[name]}, a positive finite number "
                          f"(e.g. {default:g}, the default; unset it to use the default)")
    return value


def check_env() -> None:
    """Validate every quickdraw network knob in the environment (raises :class:`ConfigError` naming the bad one)."""
    for name in _KNOB_DEFAULTS:
        _env_seconds(name)


def read_deadline() -> float:
    """Seconds a ranged read or a stat may take in total, retries included (``QUICKDRAW_READ_DEADLINE``)."""
    return _env_seconds(READ_DEADLINE_ENV)


class StopFlag(Protocol):
    """What the blocking calls here accept as ``stop``: a :class:`threading.Event` or anything alike."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def _stopped(stop: StopFlag | None, url: str) -> FetchStopped:
    reason = getattr(stop, "reason", None) or "stopped on request"
    return FetchStopped(f"{url}: {reason}")


def _sleep(seconds: float, stop: StopFlag | None, url: str) -> None:
    """Sleep, but wake up and raise :class:`FetchStopped` as soon as ``stop`` is set."""
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise _stopped(stop, url)


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


def _is_gcs(url: str) -> bool:
    return _protocol(url) in ("gs", "gcs")


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protos = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "file" in protos or "local" in protos


def open_source(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return ``(filesystem, path)`` for a source URL; ``gs://`` is anonymous unless a token is configured."""
    proto = _protocol(url)
    kwargs: dict[str, Any] = {}
    if proto in ("gs", "gcs"):
        kwargs["token"] = os.environ.get(TOKEN_ENV, "anon")
        # Without a per-request timeout a stalled connection hangs forever: gcsfs retries errors, not silence.
        kwargs["requests_timeout"] = _env_seconds(REQUEST_TIMEOUT_ENV)
        endpoint = os.environ.get(ENDPOINT_ENV) or os.environ.get("STORAGE_EMULATOR_HOST")
        if endpoint:
            kwargs["endpoint_url"] = endpoint
    try:
        fs, path = fsspec.core.url_to_fs(url, **kwargs)
    except ImportError:
        raise  # an optional package for this protocol: the CLI names it and how to install it
    except (OSError, ValueError, TypeError) as exc:
        # e.g. zip://x (fsspec opens the archive named by the URL's remaining part) or an unknown protocol:
        # it is the source that is wrong, whatever the OS error says, and every class would fail alike.
        raise SourceError(f"cannot open the source {url}: {exc}. --source must be a folder or an fsspec URL "
                          f"(gs://, https://, s3://, file://) of the folder holding the <class> files",
                          url=url, source_wide=True) from None
    return fs, path


def class_url(source: str, word: str, ext: str = "ndjson") -> str:
    """The URL of one class's file under ``source``; names with spaces are quoted where the scheme needs it."""
    base = source.rstrip("/")
    if _protocol(base) in ("http", "https"):
        return f"{base}/{urllib.parse.quote(word)}.{ext}"
    return f"{base}/{word}.{ext}"


def _backoff(attempt: int) -> float:
    base = _env_seconds(RETRY_BASE_ENV)
    return min(30.0, base * 2 ** min(attempt - 1, 6)) * (0.5 + random.random() / 2)


# ---------------------------------------------------------------------------------------------- what to tell
def _endpoint(fs: fsspec.AbstractFileSystem | None, url: str) -> str | None:
    """The http(s) base URL a network source talks to (gcsfs's resolved endpoint for gs://), else None."""
    if _is_gcs(url):
        loc = getattr(fs, "_location", None) if fs is not None else None
        if loc is None:
            loc = os.environ.get(ENDPOINT_ENV) or os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"
        return loc if "://" in loc else f"http://{loc}"
    if _protocol(url) in ("http", "https"):
        return url
    return None


def _host_port(endpoint: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(endpoint)
    return u.hostname or "localhost", u.port or (443 if u.scheme == "https" else 80)


def _reach_fix(url: str) -> str:
    """What to do when the source cannot be reached at all."""
    where = "(fetch.source in params.yaml for dvc repro)"
    if _is_gcs(url):
        endpoint = os.environ.get(ENDPOINT_ENV) or os.environ.get("STORAGE_EMULATOR_HOST")
        if endpoint:
            var = ENDPOINT_ENV if os.environ.get(ENDPOINT_ENV) else "STORAGE_EMULATOR_HOST"
            return (f"Check {var}={endpoint} (is that mirror or emulator running?), or unset it, or point --source "
                    f"at a local folder or another mirror {where}")
        return (f"Point --source at a local folder or mirror {where}, or set {ENDPOINT_ENV} to a reachable GCS "
                "endpoint (a mirror or emulator)")
    return f"Check that the mirror is up and the address is right, or point --source at a local folder or another mirror {where}"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (``__cause__``, else ``__context__``, and aiohttp's ``os_error``), outermost first."""
    out: list[BaseException] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        todo.extend([getattr(e, "os_error", None), e.__cause__ or e.__context__])
    return out


def _status(e: BaseException) -> int | None:
    """The HTTP status an exception carries: gcsfs HttpError ``code``, aiohttp ``status``, gcsfs's 403 OSError."""
    for attr in ("status", "code"):  # aiohttp's `code` is a deprecated alias of `status`: look at status first
        v = getattr(e, attr, None)
        if isinstance(v, int) and 100 <= v <= 599:
            return v
        if isinstance(v, str) and v.isdigit():
            return int(v)
    if isinstance(e, OSError) and str(e).startswith("Forbidden"):
        return 403  # gcsfs.retry.validate_response raises a plain OSError("Forbidden: ...") for 403
    return None


def _is_dns(e: BaseException) -> bool:
    # aiohttp's ClientConnectorDNSError wraps the resolver's socket.gaierror; the class is matched by name so
    # that this module does not import aiohttp (not every fsspec backend uses it).
    return isinstance(e, socket.gaierror) or any(c.__name__ == "ClientConnectorDNSError" for c in type(e).__mro__)


def _refused(e: BaseException) -> bool:
    if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
        return True
    # asyncio joins the errors of several addresses (::1 and 127.0.0.1) into one OSError without errno.
    return isinstance(e, OSError) and "Multiple exceptions" in str(e) and "[Errno 111]" in str(e)


def _diagnose(exc: BaseException, url: str, fs: fsspec.AbstractFileSystem | None) -> SourceError | None:
    """The permanent error ``exc`` stands for, as a one-line :class:`SourceError` (URL, cause, fix), or None
    when a retry may help (timeouts, dropped connections, 408/429/5xx, anything unknown).

    The whole chain is looked at, because libraries wrap: fsspec's HTTP ``info`` turns every failure (a DNS
    error, a 403) into a FileNotFoundError whose cause is the real one.
    """
    chain = _chain(exc)
    endpoint = _endpoint(fs, url)
    host, port = _host_port(endpoint) if endpoint else ("", 0)
    for e in chain:
        if _is_dns(e):
            return SourceError(f"cannot reach {host} (host name does not resolve: no network, or a typo in the "
                               f"address?): {url}. {_reach_fix(url)}", url=url, source_wide=True)
        if _refused(e):
            return SourceError(f"cannot reach {host}:{port} (connection refused: nothing listens there): {url}. "
                               f"{_reach_fix(url)}", url=url, source_wide=True)
        if getattr(e, "errno", None) in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return SourceError(f"cannot reach {host}:{port} (network unreachable: no network?): {url}. "
                               f"{_reach_fix(url)}", url=url, source_wide=True)
        code = _status(e)
        if code in (401, 403):
            fix = (f"The bucket does not allow anonymous reads: set {TOKEN_ENV} to credentials gcsfs accepts, or point "
                   "--source at a mirror you can read" if _is_gcs(url) else "Check the mirror's permissions, or point "
                   "--source at another mirror or a local folder")
            return SourceError(f"access denied (HTTP {code}) reading {url}. {fix}", url=url, source_wide=True)
        if code == 404:
            break  # a missing object: reported below
        if code is not None and (code >= 500 or code in (408, 429)):
            return None  # transient, even when a library wrapped it in FileNotFoundError
        if code is not None and 400 <= code < 500:
            return SourceError(f"cannot read {url}: the server refused the request (HTTP {code}): "
                               f"{_one_line(str(e))}", url=url, permanent=True)
    # Missing: a 404, or a FileNotFoundError that is the root cause (not one wrapping a timeout or a reset).
    if isinstance(chain[-1], FileNotFoundError) or any(_status(e) == 404 for e in chain):
        return SourceError(f"source object not found: {url} (is --source the folder that holds the "
                           f"<class>.{url.rsplit('.', 1)[-1]} files?)", url=url, permanent=True)
    if any(isinstance(e, (PermissionError, IsADirectoryError, NotADirectoryError)) for e in chain):
        return SourceError(f"cannot read {url}: {_describe(exc)}", url=url, permanent=True)
    if isinstance(exc, (ValueError, NotImplementedError)):  # a bad request or URL (gcsfs: "Bad Request")
        return SourceError(f"cannot read {url}: {_describe(exc)}", url=url, permanent=True)
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        # Our deadline cancelled the call, possibly while gcsfs was still backing off between its retries.
        return "no complete answer before the deadline (server silent, or still failing when gcsfs retried)"
    return _one_line(f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------- reachability check
_REACH_TTL = 60.0  # a successful check is trusted this long per endpoint, so each class does not repeat it
_reached: dict[tuple[str, int], float] = {}
_reached_lock = threading.Lock()


def _connect(host: str, port: int, timeout: float) -> BaseException | None:
    """Resolve ``host`` and open (then close) one TCP connection; the error, or None if it worked."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:  # socket.gaierror: the name does not resolve
        return exc
    errors: list[OSError] = []
    for family, kind, proto, _, addr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(timeout)
                s.connect(addr)
            return None
        except OSError as exc:
            errors.append(exc)
    # Refused on every address is "refused"; otherwise the first error says most.
    refused = [e for e in errors if isinstance(e, ConnectionRefusedError)]
    return refused[0] if errors and len(refused) == len(errors) else (errors[0] if errors else None)


def check_reachable(url: str, fs: fsspec.AbstractFileSystem | None = None, stop: StopFlag | None = None) -> None:
    """Fail fast, with a permanent source-wide :class:`SourceError`, when ``url``'s source cannot be reached.

    For network sources: resolve the host and open one TCP connection (bounded by the request timeout, at
    most 10 s; see the note at the top of this module for why gcsfs's own retries are not used for this).
    For a local source: its folder must exist. Successful checks are remembered for a minute per endpoint.
    """
    endpoint = _endpoint(fs, url)
    if endpoint is None:
        if "://" not in url or _protocol(url) in ("file", "local"):
            folder = os.path.dirname(url.split("://", 1)[-1]) or "."
            if not os.path.isdir(folder):
                raise SourceError(f"source folder not found: {folder} (for {url}). Point --source at the folder "
                                  "that holds the <class>.ndjson files (fetch.source in params.yaml for dvc repro)",
                                  url=url, source_wide=True)
        return
    host, port = _host_port(endpoint)
    now = time.monotonic()
    with _reached_lock:
        if now - _reached.get((host, port), -math.inf) < _REACH_TTL:
            return
    timeout = min(10.0, _env_seconds(REQUEST_TIMEOUT_ENV))
    # Resolving and connecting block in C; a daemon thread keeps the caller free to notice Ctrl-C or `stop`.
    box: list[BaseException | None] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(_connect(host, port, timeout))
        except BaseException as exc:  # noqa: BLE001 - e.g. UnicodeError for a host label over 63 characters
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"quickdraw-reach-{host}", daemon=True).start()
    give_up = time.monotonic() + timeout + 5.0  # resolving has its own timeouts; never wait past this
    while not done.wait(_POLL):
        if stop is not None and stop.is_set():
            raise _stopped(stop, url)
        if time.monotonic() > give_up:
            box.append(TimeoutError())
            break
    err = box[0]
    if isinstance(err, (UnicodeError, ValueError)):
        raise SourceError(f"{host!r} is not a valid host name ({err}): {url}. {_reach_fix(url)}",
                          url=url, source_wide=True) from None
    if err is None:
        with _reached_lock:
            _reached[(host, port)] = time.monotonic()
        return
    diag = _diagnose(err, url, fs)
    if diag is None:  # a connect that timed out, or an odd socket error: the network path is not there
        what = (f"no answer to a connection attempt within {timeout:g} s: no network, or a firewall?"
                if isinstance(err, TimeoutError) else _describe(err))
        diag = SourceError(f"cannot reach {host}:{port} ({what}): {url}. {_reach_fix(url)}", url=url, source_wide=True)
    raise diag from None


# ------------------------------------------------------------------------------------------- the calls
def _call(fs: fsspec.AbstractFileSystem, method: str, path: str, deadline: float, stop: StopFlag | None,
          url: str, **kwargs: Any) -> Any:
    """``fs.<method>(path, **kwargs)`` bounded by ``deadline``, and abandoned within ``_POLL`` s of ``stop``.

    fsspec's sync wrapper blocks its thread until the call ends or its timeout passes, so a Ctrl-C would
    wait for a stalled socket. For async filesystems (gcsfs, http) the coroutine is run on fsspec's loop
    here instead, with the remaining deadline as its timeout, and cancelled (the request with it) when
    ``stop`` is set or the caller is interrupted. Sync filesystems (local files) are called directly.
    """
    if not getattr(fs, "async_impl", False):
        return getattr(fs, method)(path, **kwargs)
    import asyncio  # here, not at the top: only async filesystems need it, and it costs ~35 ms to import

    coro = getattr(fs, "_" + method)(path, **kwargs)
    fut = asyncio.run_coroutine_threadsafe(
        asyncio.wait_for(coro, timeout=max(0.05, deadline - time.monotonic())), fs.loop)
    try:
        while True:
            done, _ = concurrent.futures.wait([fut], timeout=_POLL)
            if done:
                return fut.result()
            if stop is not None and stop.is_set():
                raise _stopped(stop, url)
    except BaseException:
        fut.cancel()
        raise


def _give_up(deadline: float, attempt: int) -> tuple[bool, float]:
    wait = _backoff(attempt)
    return time.monotonic() + wait > deadline, wait


def _retry_or_raise(exc: BaseException, attempt: int, deadline: float, url: str, where: str,
                    fs: fsspec.AbstractFileSystem | None, stop: StopFlag | None) -> None:
    """After failed attempt number ``attempt``: sleep the backoff, or raise :class:`SourceError` if the error is
    permanent or the deadline would pass. ``where`` (e.g. " at byte 123") goes into messages."""
    if isinstance(exc, FetchStopped):
        raise exc
    diag = _diagnose(exc, url, fs)
    if diag is not None:
        raise diag from None
    give_up, wait = _give_up(deadline, attempt)
    if give_up:
        raise SourceError(
            f"giving up on {url}{where} after {attempt} attempt(s) ({read_deadline():g} s deadline, "
            f"{READ_DEADLINE_ENV}): {_describe(exc)}", url=url) from None
    # One line per retry, never a traceback: the user sees that something is retried and why.
    log.warning("%s%s failed (%s); retry %d in %.1fs", url, where, _describe(exc), attempt, wait)
    _sleep(wait, stop, url)


def stat_object(url: str, stop: StopFlag | None = None) -> ObjectInfo:
    """Size and version identity of one object; a clear :class:`SourceError` if it is missing or unreachable.

    Checks first that the source can be reached at all (:func:`check_reachable`: no network fails in
    milliseconds, source-wide). Transient failures are retried with backoff until ``QUICKDRAW_READ_DEADLINE``
    runs out; setting ``stop`` abandons the call within a fraction of a second (:class:`FetchStopped`).
    """
    fs, path = open_source(url)
    deadline = time.monotonic() + read_deadline()
    check_reachable(url, fs, stop)
    attempt = 0
    while True:
        try:
            info = _call(fs, "info", path, deadline, stop, url)
            break
        except Exception as exc:  # network stacks raise many types; _diagnose sorts them
            attempt += 1
            _retry_or_raise(exc, attempt, deadline, url, "", fs, stop)
    if info.get("type") == "directory":
        raise SourceError(f"source is a directory, expected a file: {url}", url=url, permanent=True)
    if info.get("size") is None:
        raise SourceError(f"{url}: the server does not tell the file's size (no Content-Length on HEAD), so it "
                          "cannot be read in resumable ranges: use a mirror that does, or a local folder",
                          url=url, source_wide=True)
    etag = info.get("etag") or info.get("md5Hash") or info.get("ETag")
    gen = info.get("generation")
    if etag is None and "mtime" in info:
        etag = f"mtime:{info['mtime']}"
    elif etag is None and "created" in info:
        etag = f"mtime:{info['created']}"
    return ObjectInfo(url=url, size=int(info["size"]), etag=str(etag) if etag else None,
                      generation=str(gen) if gen is not None else None)


def read_range(fs: fsspec.AbstractFileSystem, path: str, start: int, end: int, url: str,
               stop: StopFlag | None = None) -> bytes:
    """Read ``[start, end)`` of an object, retrying transient failures with backoff under a total deadline.

    Bytes already received are kept: after a body cut short, the next request starts at the first missing
    byte, so the result is exactly the requested range and nothing is parsed twice. Gives up with a
    :class:`SourceError` naming the URL and byte offset once ``QUICKDRAW_READ_DEADLINE`` seconds are spent,
    and at once on what no retry can fix: a server that ignores Range (it answers with more bytes than
    asked), a local file that shrank below its size at the start (truncated while being read), 403/404.
    Setting ``stop`` abandons the read within a fraction of a second (:class:`FetchStopped`).
    """
    deadline = time.monotonic() + read_deadline()
    buf = bytearray()
    attempt = 0
    while True:
        pos = start + len(buf)
        try:
            data = _call(fs, "cat_file", path, deadline, stop, url, start=pos, end=end)
            if len(data) > end - pos:
                # Range was ignored (e.g. `python -m http.server` answers 200 with the whole file): asking again
                # would download the whole file again, every time, so this is permanent.
                raise SourceError(
                    f"{url}: the server ignores HTTP Range requests (asked for {end - pos:,} bytes at offset {pos:,}, "
                    f"got {len(data):,}), so every read would download the whole file. Serve the files with a "
                    "server that supports Range (not `python -m http.server`), or download them and point --source "
                    "at the local folder", url=url, source_wide=True)
            if not buf and len(data) == end - pos:
                return bytes(data)  # the common case: one complete answer, no copy into `buf`
            buf += data
            if len(buf) == end - start:
                return bytes(buf)
            if _is_local(fs):
                # No network in between: a short read means the file is shorter than when the fetch began.
                try:
                    now = fs.size(path)
                except OSError:
                    now = None
                raise SourceError(
                    f"{url} shrank while it was being read (now {now if now is not None else 'unknown'} bytes, "
                    f"needed {end:,}): it was truncated or is being rewritten. Re-run once the file is complete",
                    url=url, permanent=True)
            # A short body (connection dropped mid-stream, no Content-Length to tell) is transient.
            raise OSError(f"short read: got {len(data)} of {end - pos} bytes at offset {pos}")
        except SourceError:
            raise
        except Exception as exc:
            attempt += 1
            _retry_or_raise(exc, attempt, deadline, url, f" at byte {start + len(buf)}", fs, stop)
