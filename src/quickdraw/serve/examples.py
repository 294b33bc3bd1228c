"""Real drawings of a class, from a sequence cache, for the page to show beside its guesses.

The cache is opened once at start-up by name (``--cache``, or the plain cache name the checkpoint recorded)
and a few drawings per class are decoded from stroke-3 into absolute points; a request only picks a class by
name from that table, so no file or path is ever chosen by a request.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from quickdraw.cache.store import check_name
from quickdraw.datasets import load
from quickdraw.errors import QuickDrawError
from quickdraw.strokes import stroke3_to_strokes

__all__ = ["Examples", "examples_for_checkpoint"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class Examples:
    """Up to ``per_class`` drawings of each class of a cached dataset, as ``[[xs], [ys]]`` strokes."""

    def __init__(self, name_or_path: str | os.PathLike[str], *, version: str = "latest",
                 root: str | os.PathLike[str] | None = None, per_class: int = 8) -> None:
        self.drawings: dict[str, list[list[list[list[int]]]]] = {}
        self.name = self.version = ""
        for split in SPLITS:
            try:
                ds = load(name_or_path, split=split, format="stroke3", version=version, root=root)
            except QuickDrawError:
                if split == SPLITS[-1] and not self.name:
                    raise
                continue  # a cache may lack a split (e.g. no test split); the others still serve
            self.name, self.version = ds.name, ds.version
            labels = np.asarray(ds.labels)
            # The first drawings of each class in cache order, found with one stable sort (not a Python loop
            # over what may be a million rows).
            order = np.argsort(labels, kind="stable")
            starts = np.searchsorted(labels[order], np.arange(len(ds.classes) + 1))
            for c, word in enumerate(ds.classes):
                got = self.drawings.setdefault(word, [])
                for i in order[starts[c] : starts[c + 1]][: max(0, per_class - len(got))]:
                    got.append(stroke3_to_strokes(ds[int(i)][0]))

    def get(self, word: str, n: int) -> list[list[list[list[int]]]]:
        """Up to ``n`` drawings of ``word`` (none for a class the cache does not hold)."""
        return self.drawings.get(word, [])[:n]

    def describe(self) -> dict[str, Any]:
        """Name, version and class count of the cache the examples come from."""
        return {"cache": self.name, "version": self.version, "classes": len(self.drawings)}


def examples_for_checkpoint(cache: str | None, info: dict[str, Any],
                            root: str | os.PathLike[str] | None = None) -> Examples | None:
    """The examples for ``serve``: from ``cache`` when given (errors propagate: the user asked for it), else
    from the cache the checkpoint was trained on if it records a plain cache *name* that is present here
    (a path stored in a checkpoint is never followed; DESIGN "Containment"), else None."""
    if cache is not None:
        return Examples(cache, root=root)
    rec = info.get("cache") if isinstance(info.get("cache"), dict) else {}
    name, version = rec.get("name"), rec.get("version")
    try:
        check_name(name)
        return Examples(name, version=version if isinstance(version, str) else "latest", root=root)
    except QuickDrawError as exc:
        log.info("no example drawings: the checkpoint's training cache is not available here (%s)", exc)
        return None
