"""The executor the data stages submit their per-class work to: none (the stage's own local pool) or Dask's.

lhotse's pattern: a library function takes an optional :class:`concurrent.futures.Executor` and submits
self-contained, picklable per-class tasks to it; where those run is the caller's business. The CLI (and so
the DVC stages) picks a Dask distributed cluster when ``QUICKDRAW_SCHEDULER`` (or ``--scheduler``) names
one, and else runs locally as before. An environment variable rather than a param, so that moving a stage
onto a cluster does not change its DVC hash.

The scheduler is named by an address (``tcp://host:8786``, ``host:8786``) or by a scheduler file (the JSON
``dask scheduler --scheduler-file`` writes). A bad one fails in seconds with one line naming it and the fix:
the address is checked with a plain TCP connection first (Dask itself retries a refused connection until
its connect timeout, 30 s by default).

Low layer: the standard library and :mod:`quickdraw.errors`; ``distributed`` is imported only when a
scheduler is named (it is an optional extra: ``pip install 'quickdraw-pipeline[distributed]'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any, TypeVar

from quickdraw.errors import ConfigError

__all__ = ["SCHEDULER_ENV", "CONNECT_TIMEOUT", "ClusterStop", "LocalStop", "cluster_executor", "is_local",
           "resolve_scheduler", "run_tasks", "stop_signal"]

SCHEDULER_ENV = "QUICKDRAW_SCHEDULER"
#: Seconds to wait for the scheduler to answer (the TCP check, then Dask's own handshake).
CONNECT_TIMEOUT = 10.0

T = TypeVar("T")


def resolve_scheduler(scheduler: str | None = None) -> str | None:
    """The scheduler the user named: ``scheduler`` (``--scheduler``) if given, else ``$QUICKDRAW_SCHEDULER``;
    None (an empty value too) means run locally."""
    value = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV)
    value = (value or "").strip()
    return value or None


def _where(scheduler: str, explicit: bool) -> str:
    return "--scheduler" if explicit else SCHEDULER_ENV


def _fix(explicit: bool) -> str:
    how = "drop --scheduler" if explicit else f"unset {SCHEDULER_ENV}"
    return (f"start one (`dask scheduler`, then `dask worker tcp://HOST:8786` on each machine) and name it as "
            f"tcp://HOST:8786 or a scheduler file, or {how} to run on this machine")


def _address(scheduler: str, explicit: bool) -> tuple[str | None, str | None]:
    """``(address, scheduler_file)`` from what the user wrote; ConfigError when it is neither."""
    path = Path(scheduler).expanduser()
    if "://" not in scheduler and (path.suffix == ".json" or path.exists()):
        if not path.is_file():
            raise ConfigError(f"{_where(scheduler, explicit)}={scheduler!r}: no such scheduler file; {_fix(explicit)}")
        try:
            doc = json.loads(path.read_bytes()[: 1 << 20])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{_where(scheduler, explicit)}={scheduler!r}: not a Dask scheduler file ({exc}); "
                              f"{_fix(explicit)}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("address"), str):
            raise ConfigError(f"{_where(scheduler, explicit)}={scheduler!r}: not a Dask scheduler file (no "
                              f"'address'); {_fix(explicit)}")
        return doc["address"], str(path)
    address = scheduler if "://" in scheduler else f"tcp://{scheduler}"
    u = urllib.parse.urlsplit(address)
    try:
        port = u.port
    except ValueError:
        port = None
    if u.scheme not in ("tcp", "tls", "ws", "wss", "inproc") or not u.hostname or (u.scheme != "inproc" and not port):
        raise ConfigError(f"{_where(scheduler, explicit)}={scheduler!r} is not a scheduler address: expected "
                          f"tcp://HOST:PORT or a scheduler file; {_fix(explicit)}")
    return address, None


def _check_reachable(address: str, shown: str, explicit: bool) -> None:
    u = urllib.parse.urlsplit(address)
    if u.scheme == "inproc":
        return
    try:
        with socket.create_connection((u.hostname, u.port), timeout=min(5.0, CONNECT_TIMEOUT)):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"cannot reach the Dask scheduler {shown} ({_where(shown, explicit)}): {why}; "
                          f"{_fix(explicit)}") from None


@contextlib.contextmanager
def cluster_executor(scheduler: str | None = None, *, retries: int = 0) -> Iterator[Executor | None]:
    """The executor for the named scheduler (``--scheduler`` or ``$QUICKDRAW_SCHEDULER``), or None for none.

    Yields ``distributed.Client(...).get_executor()`` and closes the client afterwards (the cluster keeps
    running). ``retries`` re-runs a task that raised (a worker that *died* is always retried elsewhere by
    Dask, up to its ``allowed-failures``). Raises :class:`ConfigError` in seconds for an address that is not
    one, an unreachable scheduler, or a missing ``distributed``.
    """
    explicit = scheduler is not None and bool(scheduler.strip())
    named = resolve_scheduler(scheduler)
    if named is None:
        yield None
        return
    address, sfile = _address(named, explicit)
    assert address is not None
    _check_reachable(address, named, explicit)
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"{_where(named, explicit)}={named!r} names a Dask cluster, but dask.distributed is not "
                          "installed: pip install 'quickdraw-pipeline[distributed]' (or 'dask[distributed]')") from None
    def connect() -> Any:
        if sfile is not None:
            return distributed.Client(scheduler_file=sfile, timeout=CONNECT_TIMEOUT, set_as_default=False)
        return distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)

    # On a daemon thread with a deadline of our own: Client's timeout does not bound the handshake, so a port
    # that accepts but does not speak Dask (the dashboard's 8787, any other server) hung the command for good,
    # and a peer sending garbage made Dask raise whatever it raised (found by review). The main thread waits
    # on an Event, so Ctrl-C still interrupts at once.
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["client"] = connect()
        except BaseException as exc:  # noqa: BLE001 - reported below as one line
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="quickdraw-dask-connect", daemon=True).start()
    if not done.wait(CONNECT_TIMEOUT + 5):
        raise ConfigError(f"the Dask scheduler {named} ({_where(named, explicit)}) accepted a connection but did "
                          f"not answer as a Dask scheduler within {CONNECT_TIMEOUT + 5:.0f} s: is it the scheduler "
                          f"port (usually 8786, not the dashboard's 8787)? {_fix(explicit)}")
    if "error" in box:
        exc = box["error"]
        raise ConfigError(f"cannot connect to the Dask scheduler {named} ({_where(named, explicit)}): "
                          f"{type(exc).__name__}: {str(exc)[:200]}; {_fix(explicit)}") from None
    client = box["client"]
    try:
        # pure=False: a task is a side effect (it writes a class folder), never a cached value to reuse.
        yield client.get_executor(pure=False, retries=retries)
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=5)


def is_local(executor: Executor | None) -> bool:
    """Whether tasks submitted to ``executor`` run in processes on this machine that see its files (None, a
    thread or process pool). A Dask executor counts as remote even on loopback: its workers may be anywhere."""
    if executor is None:
        return True
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    return isinstance(executor, (ThreadPoolExecutor, ProcessPoolExecutor))


def run_tasks(
    executor: Executor,
    fn: Callable[..., T],
    args: Iterable[tuple[Any, ...]],
    on_done: Callable[[int, T], None] | None = None,
    *,
    poll: float = 0.2,
) -> list[T]:
    """Submit ``fn(*a)`` for each ``a`` to ``executor`` and return the results in submission order.

    ``on_done(i, result)`` is called on this thread as each task finishes, in completion order (progress
    bars, summaries). This thread never blocks without a timeout, so Ctrl-C reaches it within ``poll``
    seconds; then, or when a task raises, the tasks not yet started are cancelled and the error re-raised
    (tasks already running on a worker finish their own atomic unit of work; nothing they write is visible
    as complete before its manifest).
    """
    futures: list[Future[T]] = [executor.submit(fn, *a) for a in args]
    index = {id(f): i for i, f in enumerate(futures)}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait_futures(pending, timeout=poll, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: index[id(f)]):
                res = f.result()  # re-raises the task's error here
                if on_done is not None:
                    on_done(index[id(f)], res)
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return [f.result() for f in futures]


class LocalStop(threading.Event):
    """A stop flag shared with tasks on threads of this process, with the reason they report when they stop."""

    reason = "stopped on request"

    def stop(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
            self.set()


class ClusterStop:
    """A stop flag that tasks on Dask workers poll: a named ``distributed.Event`` the client sets.

    Picklable (only the name travels); on the worker it asks the scheduler at most every ``every`` seconds,
    so a task's reaction time to Ctrl-C on the client stays within about a second at a negligible cost.
    """

    reason = "stopped on request (the run was interrupted, or another class failed)"

    def __init__(self, name: str, every: float = 0.5) -> None:
        self.name, self.every = name, every
        self._seen, self._last = False, 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "every": self.every}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["every"])  # type: ignore[misc]

    def is_set(self) -> bool:
        if self._seen:
            return True
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            try:
                import distributed

                self._seen = bool(distributed.Event(self.name).is_set())
            except Exception:  # noqa: BLE001 - not on a worker, or the scheduler is gone: nothing to stop us
                self._seen = False
        return self._seen

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.1 if end is None else min(0.1, end - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)
        return True


def stop_signal(executor: Executor) -> tuple[Any, Callable[[str], None]]:
    """``(flag, stop)`` for tasks submitted to ``executor``: pass ``flag`` to each task (it has ``is_set()``,
    ``wait()`` and ``reason``); ``stop(reason)`` sets it. Threads share a :class:`LocalStop`, Dask workers poll
    a :class:`ClusterStop`; for other executors (a process pool) the flag is None and queued tasks are only
    cancelled."""
    from concurrent.futures import ThreadPoolExecutor

    if isinstance(executor, ThreadPoolExecutor):
        flag = LocalStop()
        return flag, flag.stop
    client = getattr(executor, "_client", None)
    if client is not None and type(executor).__module__.startswith("distributed"):
        import distributed

        name = f"quickdraw-stop-{uuid.uuid4().hex}"
        event = distributed.Event(name, client=client)

        def stop(reason: str) -> None:
            with contextlib.suppress(Exception):
                event.set()

        return ClusterStop(name), stop
    return None, lambda reason: None
