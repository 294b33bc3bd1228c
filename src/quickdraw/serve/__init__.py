"""``quickdraw serve``: a local drawing page and prediction API around one trained checkpoint.

``create_app(Predictor("models/best.pt"), Examples("mini10"))`` builds the Starlette app; ``quickdraw serve``
runs it on uvicorn. See :mod:`quickdraw.serve.app` for the routes, limits and the extension point.
"""

from __future__ import annotations

from quickdraw.serve.app import Extension, allowed_hosts_for, create_app, loopback_hosts
from quickdraw.serve.examples import Examples, examples_for_checkpoint
from quickdraw.serve.model import LimitError, Limits, Predictor

__all__ = ["Examples", "Extension", "LimitError", "Limits", "Predictor", "allowed_hosts_for", "create_app",
           "examples_for_checkpoint", "loopback_hosts"]
