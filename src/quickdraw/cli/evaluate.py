"""`quickdraw evaluate` (being built)."""

from __future__ import annotations


def evaluate() -> None:
    """Not built yet."""
    raise NotImplementedError("evaluate is being built")
