"""`quickdraw stats` (being built)."""

from __future__ import annotations


def stats() -> None:
    """Not built yet."""
    raise NotImplementedError("stats is being built")
