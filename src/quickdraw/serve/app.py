"""The ``quickdraw serve`` web app (Starlette): the drawing page, ``POST /api/predict``, ``GET /api/health``,
``GET /api/examples``.

Safe by default (DESIGN "Serving"): the model and the example cache are chosen when the app is built, never by
a request; bodies, points and strokes are bounded (:class:`~quickdraw.serve.model.Limits`; 413/422 with a JSON
error naming the limit); inference runs in worker threads (``anyio.to_thread``, at most ``inference_threads`` at
once) so the event loop keeps answering; the Host header must name this server (a web page elsewhere cannot
reach it through DNS rebinding); ``/api/predict`` takes ``application/json`` only, so a cross-site form cannot
post to it without a CORS preflight this app never grants; every response carries a Content-Security-Policy
that lets the page load and connect to this origin alone.

Extension point: :class:`Extension` adds routes, a static folder (``/ext/<name>/``) and a JavaScript module the
page imports after start-up (its ``setup(ctx)`` gets the drawing pad, the toolbar and the API client; see
``static/js/main.js``). ``create_app(..., extensions=[...])`` is how a later feature (for instance a
"finish my drawing" button backed by a second model) plugs in without editing this file's routes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quickdraw.errors import BadRecordError
from quickdraw.serve.examples import Examples
from quickdraw.serve.model import LimitError, Limits, Predictor

__all__ = ["STATIC", "Extension", "allowed_hosts_for", "create_app", "loopback_hosts"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: Most example drawings one request may ask for.
MAX_EXAMPLES = 8
_EXT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")

# 'self' only: the page works offline and can neither load nor send anything to another host. No inline
# script or style at all, so injected markup could not run even if some text were ever put in as HTML.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


@dataclass(frozen=True)
class Extension:
    """An optional feature plugged into the app (routes, static files, a page module).

    ``name``: lower-case identifier; static files are served at ``/ext/<name>/`` from ``static_dir``;
    ``module``: a file in ``static_dir`` the page imports (``import("/ext/<name>/<module>")``) and whose
    exported ``setup(ctx)`` it calls; ``routes``: extra Starlette routes (put them under ``/api/<name>/``);
    ``info``: JSON-ready facts listed under ``extensions`` in ``/api/health`` (and handed to ``setup``).
    """

    name: str
    routes: Sequence[BaseRoute] = ()
    static_dir: Path | None = None
    module: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _EXT_NAME.fullmatch(self.name):
            raise ValueError(f"extension name {self.name!r}: use 1-40 lower-case letters, digits, '_' or '-'")
        if self.module is not None and (self.static_dir is None or "/" in self.module or "\\" in self.module
                                        or not (self.static_dir / self.module).is_file()):
            raise ValueError(f"extension {self.name}: module {self.module!r} is not a file in its static_dir")

    def describe(self) -> dict[str, Any]:
        """What the page needs: the name, the module URL (or None) and ``info``."""
        url = f"/ext/{self.name}/{self.module}" if self.module else None
        return {"name": self.name, "module": url, **self.info}


def loopback_hosts() -> list[str]:
    """Host header values a local server answers to."""
    return ["127.0.0.1", "localhost", "::1", "[::1]"]


class SecurityHeaders:
    """Pure ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _json(doc: Any, status: int = 200) -> Response:
    # orjson: 5-10x json.dumps on the class list every answer carries; non-ASCII class names stay readable.
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _timed(fn: Callable[[bytes], dict[str, Any]], body: bytes) -> tuple[dict[str, Any], float, float]:
    """``fn(body)`` with its wall time and the CPU time of this (worker) thread, in seconds."""
    t0, c0 = time.perf_counter(), time.thread_time()
    out = fn(body)
    return out, time.perf_counter() - t0, time.thread_time() - c0


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with :class:`LimitError` (413) as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise LimitError("max_body_bytes", int(declared), limit, 413, "request body bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # a lying or absent Content-Length is caught here
        size += len(chunk)
        if size > limit:
            raise LimitError("max_body_bytes", size, limit, 413, "request body bytes (at least)")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    predictor: Predictor,
    examples: Examples | None = None,
    *,
    allowed_hosts: Sequence[str] | None = None,
    extensions: Sequence[Extension] = (),
    inference_threads: int = 2,
) -> Starlette:
    """The web app around an already loaded :class:`Predictor` (and, optionally, example drawings).

    ``allowed_hosts``: Host header values to answer (default :func:`loopback_hosts`; ``["*"]`` turns the check
    off). ``inference_threads``: predictions computed at once (more only oversubscribe the CPU cores).
    """
    limiter = anyio.CapacityLimiter(max(1, inference_threads))
    names = [e.name for e in extensions]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate extension names: {names}")

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    async def health(request: Request) -> Response:
        return _json({
            "status": "ok",
            "model": predictor.describe(),
            "examples": examples.describe() if examples is not None else None,
            "limits": predictor.limits.to_dict(),
            "extensions": [e.describe() for e in extensions],
            "requests": predictor.requests,
        })

    async def predict(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return _json({"error": f"Content-Type must be application/json, got {ctype or 'none'!r}"}, 415)
        try:
            body = await _read_body(request, predictor.limits.max_body_bytes)
            # Parsing and checking a maximal drawing takes milliseconds of CPU: off the loop as well.
            answer, wall, cpu = await anyio.to_thread.run_sync(_timed, predictor.predict_body, body, limiter=limiter)
        except LimitError as exc:
            return _json(exc.to_dict(), exc.status)
        except BadRecordError as exc:
            status = 400 if exc.reason in ("malformed JSON", "non-finite number", "too deep") else 422
            return _json({"error": str(exc), "reason": exc.reason}, status)
        response = _json(answer)
        # The standard Server-Timing header: the prediction's wall and CPU time in the worker thread, in ms
        # (browser dev tools show it; benchmarks/bench_serve.py reads it).
        response.headers["server-timing"] = f"predict;dur={wall * 1e3:.3f}, cpu;dur={cpu * 1e3:.3f}"
        return response

    async def example_drawings(request: Request) -> Response:
        word = request.query_params.get("class", "")
        n_text = request.query_params.get("n", "3")
        if not n_text.isdigit() or not 1 <= int(n_text) <= MAX_EXAMPLES:
            return _json({"error": f"n must be a whole number in 1..{MAX_EXAMPLES}", "limit": "max_examples",
                          "max": MAX_EXAMPLES}, 422)
        if word not in predictor.classes:
            return _json({"error": "unknown class (not one of the model's classes)", "class": word[:300]}, 404)
        drawings = examples.get(word, int(n_text)) if examples is not None else []
        return _json({"class": word, "drawings": drawings,
                      "cache": examples.describe() if examples is not None else None})

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/examples", example_drawings, methods=["GET"]),
    ]
    for ext in extensions:
        routes.extend(ext.routes)
        if ext.static_dir is not None:
            routes.append(Mount(f"/ext/{ext.name}", app=StaticFiles(directory=ext.static_dir), name=f"ext-{ext.name}"))
    # follow_symlink=False (the default): a link in the package folder is not served.
    routes.append(Mount("/static", app=StaticFiles(directory=STATIC), name="static"))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json({"error": f"no such page: {request.url.path[:200]}"}, 404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _json({"error": f"method {request.method} not allowed here"}, 405)

    middleware = [
        Middleware(SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or loopback_hosts())),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={404: not_found, 405: not_allowed})
    app.state.predictor = predictor
    app.state.examples = examples
    app.state.extensions = list(extensions)
    return app


def allowed_hosts_for(host: str) -> list[str]:
    """Host header values to accept when bound to ``host``: loopback names, plus ``host`` itself; any for a
    wildcard bind (``0.0.0.0``, ``::``), where the names the server is reached by are not known."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return sorted({*loopback_hosts(), host, f"[{host}]" if ":" in host else host})
