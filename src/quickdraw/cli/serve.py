"""`quickdraw serve`: a local drawing page and prediction API around a trained checkpoint."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Optional

import typer

from quickdraw.cli._common import console, friendly_errors, is_verbose, lit


def serve(
    checkpoint: Path = typer.Option(Path("models/best.pt"), "--checkpoint", help="Checkpoint to serve (loaded once)."),
    cache: Optional[str] = typer.Option(
        None, "--cache", help="Cached dataset (name or path) to show real drawings of the top class from; default: "
        "the cache the checkpoint was trained on, if it is here under that name."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. The default is this machine only; "
                             "0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port)."),
    threads: int = typer.Option(2, "--threads", min=1, max=64,
                                help="Predictions computed at once (default 2; more than the CPU cores only adds waiting)."),
    sketch_checkpoint: Optional[Path] = typer.Option(
        None, "--sketch-checkpoint", help="A Sketch-RNN checkpoint (quickdraw sketch train): adds a 'Finish it' "
        "button and POST /api/complete, which continue the drawing."),
) -> None:
    """Serve a drawing page that guesses as you draw, and POST /api/predict.

    Example: quickdraw serve --checkpoint models/best.pt --cache mini10 --port 8000

    Then open http://127.0.0.1:8000/ or: curl -s -H 'Content-Type: application/json'
    -d '{"drawing": [[[10, 200], [10, 200]]]}' http://127.0.0.1:8000/api/predict
    """
    with friendly_errors():
        import logging

        import torch
        import uvicorn

        from quickdraw.serve import Examples, Predictor, allowed_hosts_for, create_app, examples_for_checkpoint

        if not is_verbose():
            # Each request's outcome is in its HTTP answer; a warning per too-short drawing is only noise.
            logging.getLogger("quickdraw.pipeline.predict").setLevel(logging.ERROR)
        # One intra-op thread per prediction: requests run side by side in `threads` workers instead of
        # fighting over the cores (benchmarks/bench_serve.py).
        torch.set_num_threads(1)
        predictor = Predictor(checkpoint)
        examples: Examples | None = examples_for_checkpoint(cache, predictor.info)
        extensions = []
        if sketch_checkpoint is not None:
            from quickdraw.serve.sketch import Completer, sketch_extension

            extensions.append(sketch_extension(Completer(sketch_checkpoint), inference_threads=threads))
        app = create_app(predictor, examples, allowed_hosts=allowed_hosts_for(host), inference_threads=threads,
                         extensions=extensions)
        sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    where = f"examples from cache {lit(examples.name)}/{lit(examples.version)}" if examples else "no example drawings"
    console.print(f"quickdraw serve: http://{lit(shown)}:{bound}/ (checkpoint {lit(checkpoint)}, "
                  f"{len(predictor.classes)} classes, model {predictor.version}, {where}); Ctrl+C stops",
                  highlight=False, soft_wrap=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/] bound to {lit(host)}: other machines can reach this server",
                      highlight=False)
    config = uvicorn.Config(app, log_level="info" if is_verbose() else "warning", access_log=is_verbose(),
                            server_header=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a busy port or a bad address is one line (and ``--port 0`` can be
    printed as the port actually chosen)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = "the port is in use (choose another with --port)" if exc.errno == errno.EADDRINUSE else (
            exc.strerror or str(exc))
        raise ValueError(f"cannot listen on {host}:{port}: {why}") from None
    except OverflowError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {exc}") from None
    return sock
