"""`quickdraw prepare` (being built)."""

from __future__ import annotations


def prepare() -> None:
    """Not built yet."""
    raise NotImplementedError("prepare is being built")
