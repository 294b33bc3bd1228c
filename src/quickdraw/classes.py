"""The 345 Quick, Draw! categories and named presets.

A class *spec* is what a user types: a preset name (``animals10``), a comma list
(``cat,dog,"The Eiffel Tower"``), or ``@file`` (one name per line, ``#`` comments).
Resolution happens before any download so a typo never costs a fetch.
"""

from __future__ import annotations

import re
import stat
from functools import lru_cache
from pathlib import Path

# difflib and importlib.resources are imported where they are used: every CLI start imports this module
# (`quickdraw --help` included), and those two are ~30 ms of it.

__all__ = [
    "PRESETS",
    "UnknownClassError",
    "all_classes",
    "closest",
    "resolve_classes",
]


class UnknownClassError(ValueError):
    """A class or preset name that is not one of the 345 categories or a preset."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"unknown class or preset {name!r}{hint} (run `quickdraw classes` to list them)")


@lru_cache(maxsize=1)
def all_classes() -> tuple[str, ...]:
    """The 345 official categories, in the bucket's ``categories.txt`` order."""
    from importlib import resources

    text = resources.files("quickdraw").joinpath("categories.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


PRESETS: dict[str, tuple[str, ...]] = {
    # The reference benchmark of this project (94.36% top-1 to beat).
    "animals10": (
        "butterfly", "cow", "elephant", "giraffe", "monkey",
        "octopus", "scorpion", "shark", "snake", "spider",
    ),
    # Small and quick: a smoke test that still has visually distinct classes.
    "mini3": ("cat", "apple", "bicycle"),
    "fruits": (
        "apple", "banana", "blackberry", "blueberry", "grapes", "pear",
        "pineapple", "strawberry", "watermelon",
    ),
    "vehicles": (
        "ambulance", "bicycle", "bulldozer", "bus", "car", "firetruck", "motorbike",
        "pickup truck", "police car", "school bus", "tractor", "truck", "van",
    ),
    "landmarks": ("The Eiffel Tower", "The Great Wall of China", "The Mona Lisa"),
    "shapes": ("circle", "hexagon", "line", "octagon", "square", "squiggle", "star", "triangle", "zigzag"),
}


def closest(name: str, n: int = 3) -> list[str]:
    """The valid class or preset names nearest to ``name`` (case-insensitive)."""
    import difflib

    universe = list(all_classes()) + sorted(PRESETS) + ["all"]
    lowered = {u.lower(): u for u in universe}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def _lookup(name: str) -> tuple[str, ...]:
    if name == "all":
        return all_classes()
    if name in PRESETS:
        return PRESETS[name]
    by_lower = {c.lower(): c for c in all_classes()}
    if name.lower() in by_lower:
        return (by_lower[name.lower()],)
    raise UnknownClassError(name, closest(name))


#: Every category and preset name matches this; anything else read from a file is not echoed back.
_NAME_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 '\-]{0,63}")
MAX_CLASS_FILE_BYTES = 1 << 20


def _read_class_file(path: Path) -> list[str]:
    """The lines of a class-list file: a regular UTF-8 text file of at most 1 MiB (a FIFO or device would
    block or never end, and a huge file is not a list of 345 names)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"class list file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read class list file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"class list file {path} is not a regular file")
    if st.st_size > MAX_CLASS_FILE_BYTES:
        raise ValueError(f"class list file {path} is {st.st_size:,} bytes; a class list is at most "
                         f"{MAX_CLASS_FILE_BYTES:,} (one name a line)")
    try:
        with open(path, "rb") as f:
            return f.read(MAX_CLASS_FILE_BYTES + 1).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"class list file {path} is not UTF-8 text (one class name a line)") from None
    except OSError as exc:
        raise ValueError(f"cannot read class list file {path}: {exc.strerror or exc}") from None


def _split_spec(spec: str) -> list[str]:
    # Commas separate names; a name may be quoted to be explicit about spaces.
    return [p.strip().strip('"').strip("'").strip() for p in spec.split(",") if p.strip()]


def resolve_classes(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """Turn a class spec into an ordered, de-duplicated list of official category names.

    >>> resolve_classes("animals10")[:2]
    ['butterfly', 'cow']
    >>> resolve_classes("cat, The Eiffel Tower")
    ['cat', 'The Eiffel Tower']

    Raises :class:`UnknownClassError` naming the closest valid names for any unknown entry,
    and ``FileNotFoundError`` for a missing ``@file``.
    """
    names: list[tuple[str, str | None]] = []  # (name, where it was read: "FILE line N", or None for an argument)
    items = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"class names are strings, got {type(item).__name__}")
        item = item.strip()
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            for n, line in enumerate(_read_class_file(path), start=1):
                line = line.split("#", 1)[0].strip()
                if line:
                    names.extend((w, f"{path} line {n}") for w in (_split_spec(line) if "," in line else [line]))
        else:
            names.extend((w, None) for w in _split_spec(item))
    if not names:
        raise ValueError("empty class spec: give a preset (e.g. animals10), a comma list or @file")
    out: list[str] = []
    seen: set[str] = set()
    for name, where in names:
        if where is not None and not _NAME_LIKE.fullmatch(name):
            # Only echo what could be a class name: an @file that is not a class list (say @/etc/shadow)
            # must not have its content printed in an error message or a log.
            raise ValueError(f"{where} is not a class name (not shown: class names are letters, spaces, "
                             f"hyphens and apostrophes); is {where.rsplit(' line ', 1)[0]} a class list?")
        for cls in _lookup(name):
            if cls not in seen:
                seen.add(cls)
                out.append(cls)
    return out
