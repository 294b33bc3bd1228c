"""`quickdraw fetch` (being built)."""

from __future__ import annotations


def fetch() -> None:
    """Not built yet."""
    raise NotImplementedError("fetch is being built")
