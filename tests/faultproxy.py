"""A fault-injecting HTTP proxy on 127.0.0.1, between gcsfs and the GCS emulator (tests only).

Every request is forwarded to the upstream emulator on a fresh connection and its response read in full;
then, if a fault rule matches, the proxy answers wrongly instead:

* ``drop``       headers with the full Content-Length, ``n_bytes`` of the body, then the socket is closed
                 (aiohttp sees a payload error; gcsfs retries the call);
* ``drop_nolen`` the same without Content-Length, so the client reads a short body until EOF and believes it
                 complete (gcsfs does not notice; ``read_range`` must, and resume at the right byte);
* ``reset``      the socket is closed before any byte of the answer;
* ``status``     an HTTP error (429, 500, 503, ...) with a GCS-style JSON error body;
* ``stall``      nothing is sent for ``delay`` seconds (longer than the client's request timeout), then close.

Rules match by kind of request (``media`` = object downloads, ``meta`` = JSON API, ``any``) and an optional
substring of the path; each fires ``times`` times (``None``: forever) after skipping ``skip`` matches.
``random_faults(p, seed)`` instead injects a seeded random fault into a share ``p`` of media requests.
``log`` records every request with the action taken, so tests can count retries.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = ("drop", "drop_nolen", "reset", "status", "stall")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te", "upgrade"}


@dataclass
class Rule:
    kind: str
    match: str = "media"  # media | meta | any
    path: str | None = None  # substring the request path must contain
    times: int | None = 1
    skip: int = 0
    status: int = 503
    n_bytes: int = 100  # for drop / drop_nolen: body bytes sent before closing
    delay: float = 5.0  # for stall
    seen: int = 0
    fired: int = 0

    def applies(self, kind: str, path: str) -> bool:
        if self.match != "any" and self.match != kind:
            return False
        if self.path is not None and self.path not in urllib.parse.unquote(path):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass
class Entry:
    method: str
    path: str
    range: str | None
    action: str  # "ok" or the fault kind
    t: float = field(default_factory=time.monotonic)


class FaultProxy:
    """``with FaultProxy(upstream_url) as p: os.environ["QUICKDRAW_GCS_ENDPOINT"] = p.url``."""

    def __init__(self, upstream: str) -> None:
        u = urllib.parse.urlsplit(upstream)
        self.upstream_host, self.upstream_port = u.hostname or "127.0.0.1", u.port or 80
        self.rules: list[Rule] = []
        self.log: list[Entry] = []
        self._rng: random.Random | None = None
        self._p = 0.0
        self._rand_kinds: tuple[str, ...] = KINDS
        self._rand_status = (429, 500, 503)
        self._stall = 5.0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                try:
                    proxy._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (its own timeout): nothing to answer

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # ------------------------------------------------------------------ control
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def add(self, kind: str, **kw: Any) -> Rule:
        assert kind in KINDS, kind
        rule = Rule(kind, **kw)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self._rng = None

    def random_faults(self, p: float, seed: int, kinds: tuple[str, ...] = KINDS, stall: float = 5.0) -> None:
        """Inject a seeded random fault (kind, status, cut point) into a share ``p`` of media requests."""
        with self._lock:
            self._rng, self._p, self._rand_kinds, self._stall = random.Random(seed), p, kinds, stall

    def faults(self) -> list[Entry]:
        return [e for e in self.log if e.action != "ok"]

    # ------------------------------------------------------------------ serving
    def _choose(self, kind: str, path: str) -> Rule | None:
        with self._lock:
            for r in self.rules:
                if r.applies(kind, path):
                    return r
            if self._rng is not None and kind == "media" and self._rng.random() < self._p:
                k = self._rng.choice(self._rand_kinds)
                return Rule(k, status=self._rng.choice(self._rand_status), n_bytes=self._rng.randrange(0, 4096),
                            delay=self._stall)
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        kind = "media" if "alt=media" in h.path else "meta"
        rule = self._choose(kind, h.path)
        self.log.append(Entry(h.command, h.path, h.headers.get("Range"), rule.kind if rule else "ok"))
        h.close_connection = True
        if rule is not None and rule.kind in ("reset", "stall"):
            if rule.kind == "stall":
                time.sleep(rule.delay)
            _abort(h)
            return
        if rule is not None and rule.kind == "status":
            payload = json.dumps({"error": {"code": rule.status, "message": f"injected {rule.status}"}}).encode()
            h.send_response(rule.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            if rule.status == 429:
                h.send_header("Retry-After", "0")
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(payload)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP and k.lower() != "host"}
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            conn.request(h.command, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, reason, rheaders = resp.status, resp.reason, resp.getheaders()
        finally:
            conn.close()
        h.send_response(status, reason)
        for k, v in rheaders:
            if k.lower() not in _HOP:
                h.send_header(k, v)
        if rule is None or rule.kind == "drop":
            h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        if rule is None:
            h.wfile.write(data)
            return
        # drop / drop_nolen: part of the body, then the connection goes away
        h.wfile.write(data[: min(rule.n_bytes, max(len(data) - 1, 0))])
        h.wfile.flush()
        _abort(h)


def _abort(h: BaseHTTPRequestHandler) -> None:
    try:
        h.wfile.flush()
    except OSError:
        pass
    try:
        h.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
