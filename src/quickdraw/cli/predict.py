"""`quickdraw predict` (being built)."""

from __future__ import annotations


def predict() -> None:
    """Not built yet."""
    raise NotImplementedError("predict is being built")
