"""The house has floors: every quickdraw module imports only from its own floor or the ones below.

Parsed from the source with ``ast`` (nothing is imported), so a violation fails here even when it sits in a
function body or an ``if TYPE_CHECKING:`` block. The order is DESIGN.md's layout, bottom to top:

0. foundation: ``errors``, ``_io``, ``_safety``, ``_ownership``, ``classes``, ``strokes``, ``metrics``,
   ``shard_schema`` (the prepare-shard schema), ``parallel`` -- numpy/pyarrow helpers that know no stage;
1. ``sources/`` (reading drawings); 2. ``cache/`` (fingerprints, store, build); 3. ``datasets/`` (load,
   torch glue); 4. ``models/``; 5. ``pipeline/`` (one module per stage, may use everything below);
6. ``serve/``; 7. ``cli/`` (thin Typer front end); 8. the root package ``quickdraw`` (the public API, which
   re-exports from anywhere).

One exception: ``from quickdraw import __version__`` is allowed on every floor (package metadata, bound in
the root package before it imports anything of its own, not a dependency on the API it re-exports).
Also: no module outside ``cli/`` imports typer (or click) or rich's console (DESIGN.md: library code logs via
``logging``), and there are no import cycles among quickdraw modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "quickdraw"

#: Floors, bottom first. A module's floor is that of its longest matching prefix.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", (
        "quickdraw.errors", "quickdraw._io", "quickdraw._safety", "quickdraw._ownership", "quickdraw.classes",
        "quickdraw.strokes", "quickdraw.metrics", "quickdraw.shard_schema", "quickdraw.parallel",
    )),
    ("sources", ("quickdraw.sources",)),
    ("cache", ("quickdraw.cache",)),
    ("datasets", ("quickdraw.datasets",)),
    ("models", ("quickdraw.models",)),
    ("pipeline", ("quickdraw.pipeline",)),
    ("serve", ("quickdraw.serve",)),
    ("cli", ("quickdraw.cli", "quickdraw.__main__")),
    ("api", ("quickdraw",)),
]
#: Names that may be taken from the root package on any floor.
ROOT_METADATA = {"__version__"}
#: Imports reserved for cli/ (the console front end).
CLI_ONLY = ("typer", "click", "rich.console")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a quickdraw module (or a third-party module name)
    line: int
    names: tuple[str, ...] = ()  # for ``from X import a, b``


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py")) if "__pycache__" not in p.parts}


def imports_of(mod: str, path: Path, modules: set[str]) -> Iterator[Import]:
    """Every import statement of a module, wherever it sits (top level, functions, TYPE_CHECKING blocks)."""
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield Import(mod, a.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = tuple(a.name for a in node.names)
            # ``from quickdraw.pipeline import fetch`` imports the submodule quickdraw.pipeline.fetch.
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            for s in subs:
                yield Import(mod, s, node.lineno)
            rest = tuple(n for n in names if f"{target}.{n}" not in modules)
            if rest or not subs:
                yield Import(mod, target, node.lineno, rest)


def floor_of(mod: str) -> int:
    best, floor = -1, -1
    for i, (_, prefixes) in enumerate(FLOORS):
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and len(p) > best:
                best, floor = len(p), i
    return floor


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    modules = all_modules()
    names = set(modules)
    return [imp for mod, path in modules.items() for imp in imports_of(mod, path, names)]


def _is_quickdraw(target: str) -> bool:
    return target == "quickdraw" or target.startswith("quickdraw.")


def _is_root_metadata(imp: Import) -> bool:
    return imp.target == "quickdraw" and bool(imp.names) and set(imp.names) <= ROOT_METADATA


def test_every_module_has_a_floor() -> None:
    # A new top-level module must be placed on a floor here (the root package's floor is only for itself).
    unplaced = [m for m in all_modules() if floor_of(m) == len(FLOORS) - 1 and m != "quickdraw"]
    assert not unplaced, f"put these modules on a floor in FLOORS: {unplaced}"


def test_imports_only_go_down(graph: list[Import]) -> None:
    bad = []
    for imp in graph:
        if not _is_quickdraw(imp.target) or _is_root_metadata(imp):
            continue
        src, dst = floor_of(imp.importer), floor_of(imp.target)
        if dst > src:
            bad.append(f"{imp.importer} (floor {FLOORS[src][0]}) imports {imp.target} (floor {FLOORS[dst][0]}), "
                       f"line {imp.line}")
    assert not bad, "imports reaching up a floor:\n" + "\n".join(bad)


def test_no_console_libraries_outside_cli(graph: list[Import]) -> None:
    cli = floor_of("quickdraw.cli")
    bad = []
    for imp in graph:
        if floor_of(imp.importer) == cli:
            continue
        t = imp.target
        if any(t == c or t.startswith(c + ".") for c in CLI_ONLY) or (t == "rich" and {"console", "print", "Console"} & set(imp.names)):
            bad.append(f"{imp.importer} imports {t} {list(imp.names) or ''} (line {imp.line})")
    assert not bad, "console libraries outside cli/:\n" + "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles(graph: list[Import]) -> None:
    edges: dict[str, set[str]] = {}
    for imp in graph:
        if _is_quickdraw(imp.target) and not _is_root_metadata(imp) and imp.target != imp.importer:
            edges.setdefault(imp.importer, set()).add(imp.target)
    cycles = _cycles(edges)
    assert not cycles, "import cycles among quickdraw modules (lazy and TYPE_CHECKING imports count too):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_checks_see_what_they_should() -> None:
    """The parser itself: submodule imports, relative imports and the root-metadata exception."""
    modules = set(all_modules())
    got = list(imports_of("quickdraw.pipeline.evaluate", PKG / "pipeline" / "evaluate.py", modules))
    assert any(i.target == "quickdraw.pipeline.train" for i in got)
    assert floor_of("quickdraw.cache.synthetic") < floor_of("quickdraw.pipeline.prepare")
    assert floor_of("quickdraw.datasets.sequence") == floor_of("quickdraw.datasets.torch_data")
    assert _is_root_metadata(Import("x", "quickdraw", 1, ("__version__",)))
    assert not _is_root_metadata(Import("x", "quickdraw", 1, ("load",)))
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
