"""Reading one stage's section of params.yaml plus ``--set key=value`` overrides (train and sketch share it).

The file is what ``dvc repro`` and users edit by hand, so it is read defensively: only a regular file (a FIFO
would block the stage), at most :data:`MAX_PARAMS_BYTES`, and a key written twice in one mapping is an error
(PyYAML keeps the last one silently, so ``hidden: 64`` above ``hidden: 192`` would train the wrong model).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import reprlib
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from quickdraw._safety import open_regular
from quickdraw.errors import QuickDrawError

__all__ = ["MAX_PARAMS_BYTES", "ParamError", "checked_values", "params_section", "read_params_file", "short_repr"]

MAX_PARAMS_BYTES = 1 << 20  # a params.yaml is a few KB

# repr() of a value from the file, bounded: YAML aliases can make a 1 KB file a value of 10^9 elements
# (an "alias bomb"), and a full repr() of it would never end.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 3, 4, 4, 60, 60


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a few elements and levels: safe on any value a YAML file can hold."""
    text = _SHORT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ParamError(QuickDrawError, ValueError):
    """A param (params.yaml or ``--set``) of the wrong type or out of range, or a params file that cannot be
    read; the message names the key or file, the value given and what is allowed, on one line (the CLI prints
    it and exits 2)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base`: merged keys may be overridden by the mapping's own ones
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if isinstance(key, (str, int, float, bool)) or key is None:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (lines {seen[key]} and {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)  # type: ignore[no-untyped-call]


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The top-level mapping of a params file; :class:`ParamError` (one line, naming the file) otherwise."""
    p = os.fspath(path)
    if not os.path.lexists(p):
        raise ParamError(f"params file not found: {p} (give --params the project's params.yaml)")
    with open_regular(p, "params file", error=ParamError) as f:
        data = f.read(MAX_PARAMS_BYTES + 1)
    if len(data) > MAX_PARAMS_BYTES:
        raise ParamError(f"{p}: larger than {MAX_PARAMS_BYTES:,} bytes, not a params file")
    try:
        doc = yaml.load(data.decode("utf-8"), Loader=_UniqueKeyLoader) or {}  # noqa: S506 (a SafeLoader)
    except RecursionError:
        raise ParamError(f"{p}: nested too deeply to be a params file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise ParamError(f"{p}: not valid YAML{at} ({problem or first})") from None
    if not isinstance(doc, dict):
        raise ParamError(f"{p}: expected a YAML mapping at the top level")
    return doc


def checked_values(name: str, cls: type, d: dict[Any, Any], sources: dict[str, str] | None,
                   check: Callable[[str, Any, str], Any]) -> dict[str, Any]:
    """``d``'s values for the fields of dataclass ``cls``, each passed through ``check(key, value, where)``; an
    unknown key is a :class:`ParamError` naming the closest valid ones (``name`` is the section: train, sketch).
    ``sources`` maps a key to where it came from (shown in errors)."""
    names = [f.name for f in dataclasses.fields(cls)]
    sources = sources or {}
    values: dict[str, Any] = {}
    for key, value in d.items():
        where = f" (from {sources[key]})" if key in sources else ""
        if not isinstance(key, str) or key not in names:
            close = difflib.get_close_matches(str(key), names, n=3)
            hint = "; did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""
            raise ParamError(f"unknown {name} param {short_repr(key)}{where}{hint} (valid: {', '.join(names)})")
        values[key] = check(key, value, where)
    return values


def params_section(path: str | os.PathLike[str] | None, name: str,
                   overrides: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """``(values, sources)`` of section ``name``: the file's section (plus its top-level ``seed`` unless the
    section has its own), then each ``--set key=value`` (``key`` is ``<name>.<key>`` or ``<key>``; the value
    is parsed as YAML, or kept as text if it is not YAML). ``sources`` says where each value came from, for
    the error messages of the caller's checks."""
    doc: dict[str, Any] = {}
    where = "params"
    if path is not None:
        doc = read_params_file(path)
        where = os.fspath(path)
    raw = doc.get(name)
    if raw is not None and not isinstance(raw, dict):
        raise ParamError(f"{where}: {name} = {short_repr(raw)}: expected a mapping of {name} params")
    section = dict(raw or {})
    sources = {k: where for k in section}
    if "seed" in doc and "seed" not in section:
        section["seed"], sources["seed"] = doc["seed"], where
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ParamError(f"--set expects key=value, got {item[:80]!r}")
        key = key.strip().removeprefix(f"{name}.")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text  # e.g. --set device=cuda:0]: kept as text; the caller's check names it if it is wrong
        section[key] = value
        sources[key] = f"--set {item.strip()}"
    return section, sources
