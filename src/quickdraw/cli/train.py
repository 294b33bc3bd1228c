"""`quickdraw train` (being built)."""

from __future__ import annotations


def train() -> None:
    """Not built yet."""
    raise NotImplementedError("train is being built")
