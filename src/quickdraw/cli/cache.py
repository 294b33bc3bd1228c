"""`quickdraw cache build|ls|info|verify|gc`: the versioned sequence cache."""

from __future__ import annotations

from pathlib import Path

import typer

from quickdraw.cli._common import console, friendly_errors, lit, out_console, print_json, table

app = typer.Typer(
    help=(
        "The versioned sequence cache (build from prepare's shards, list, inspect, verify, collect).\n\n"
        "Example: quickdraw cache build --in data/strokes --name animals10"
    ),
    no_args_is_help=True,
)

_ROOT_HELP = "Cache root (default: $QUICKDRAW_CACHE, else the user cache dir)."


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command("build")
def build(
    in_dir: str = typer.Option(..., "--in", help="The prepare stage's output (holds stroke3/, stroke5/): a folder or an fsspec URL (gs://..., s3://...)."),
    name: str = typer.Option(..., "--name", help="Dataset name, e.g. animals10."),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    formats: str = typer.Option(
        None, "--formats", help="Comma list of formats to cache (default: every format the prepare output has)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Build the cache version of prepare's shards (a no-op when it exists) and make it LATEST.

    Example: quickdraw cache build --in data/strokes --name animals10 --json

    From remote shards (downloaded to $TMPDIR, cached locally): quickdraw cache build --in gs://b/strokes --name all
    """
    from quickdraw.cache import cache_root

    # Resolving the root can fail too (a `~user` that does not exist): a one-line error, not a traceback.
    with friendly_errors():
        output = cache_root(root) / name
    with friendly_errors(output):
        from quickdraw.pipeline.cache import run

        # None: let build_cache cache what prepare wrote (`prepare --formats stroke3` has no stroke5/).
        fmts = None if formats is None else [f.strip() for f in formats.split(",") if f.strip()]
        summary = run(in_dir, name, root=root, formats=fmts)  # type: ignore[arg-type]
    if as_json:
        print_json(summary)
        return
    console.print(
        f"[bold green]cached[/] {lit(summary['name'])}/{summary['version']} "
        f"({_human(summary['size_bytes'])}) at {lit(summary['path'])}",
        highlight=False, soft_wrap=True,
    )


@app.command("ls")
def ls(
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """List cached datasets and their versions (LATEST marked with *).

    Example: quickdraw cache ls --json
    """
    from quickdraw.cache import cache_root, list_datasets, list_versions, search_roots

    with friendly_errors():
        r = cache_root(root)
        # `root` (not `r`) goes down so that, without --root, ./data/cache is listed too, as `load` finds it.
        roots = search_roots(root)
        rows = [(n, v) for n in list_datasets(root) for v in list_versions(n, root)]
        datasets = [
            {
                "name": n,
                "version": v.version,
                "latest": v.is_latest,
                "path": str(v.path),
                "formats": v.formats,
                "sequences": v.manifest["counts"]["sequences"],
                "size_bytes": v.size_bytes,
            }
            for n, v in rows
        ]
    if as_json:
        print_json({"root": str(r), "roots": [str(p) for p in roots], "datasets": datasets})
        return
    where = " or ".join(str(p) for p in roots)
    if not rows:
        console.print(f"no cached datasets under {where}", highlight=False, soft_wrap=True)
        return
    # The root goes on its own line (soft-wrapped, never cut): a long temp or home path would otherwise
    # wrap inside the table title at 80 columns.
    out_console.print(f"cache at {lit(where)}", highlight=False, soft_wrap=True)
    t = table()
    t.add_column("name", overflow="fold", ratio=1, min_width=8)
    t.add_column("version", no_wrap=True)
    t.add_column("formats", overflow="fold")
    for col in ("sequences", "size"):
        t.add_column(col, justify="right", no_wrap=True)
    for d in datasets:
        seqs = d["sequences"]
        t.add_row(
            lit(d["name"]),
            ("* " if d["latest"] else "  ") + d["version"],
            lit(", ".join(d["formats"])),  # ", " so that the cell can wrap between formats
            f"{max(seqs.values()) if seqs else 0:,}",
            _human(d["size_bytes"]),
        )
    out_console.print(t)


@app.command("info")
def info(
    name: str = typer.Argument(..., help="Dataset name, or a path to a name or version directory."),
    version: str = typer.Option("latest", "--version", help="Version id (or unique prefix)."),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Show one version: classes, formats, splits, counts, params, provenance.

    Example: quickdraw cache info animals10 --version 3f2a
    """
    from quickdraw.cache import resolve

    with friendly_errors():
        cv = resolve(name, version=version, root=root)
        s = cv.summary()  # reads LATEST and the manifest: its errors are friendly too
    if as_json:
        print_json(s)
        return
    out_console.print(
        f"[bold]{lit(s['name'])}[/] {lit(s['version'])}{' (latest)' if s['latest'] else ''}  {lit(s['path'])}",
        highlight=False, soft_wrap=True,
    )
    out_console.print(
        f"{len(s['classes'])} classes: {lit(', '.join(s['classes']))}\n"
        f"size {_human(s['size_bytes'])}, created by quickdraw {lit(s['created_by']['version'])}",
        highlight=False,
    )
    t = table()
    for col in ("format", "split"):
        t.add_column(col, no_wrap=True)
    for col in ("sequences", "steps", "max length"):
        t.add_column(col, justify="right", no_wrap=True)
    for fmt, splits in s["formats"].items():
        for split, c in splits.items():
            t.add_row(lit(fmt), lit(split), f"{c['n']:,}", f"{c['steps']:,}", str(c["max_length"]))
    out_console.print(t)


@app.command("verify")
def verify(
    target: str = typer.Argument(..., help="Dataset name, or a path to a name or version directory."),
    version: str = typer.Option("latest", "--version", help="Version id (or unique prefix)."),
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Re-check every file's size and checksum; names each bad file and exits 1 if any.

    Example: quickdraw cache verify animals10
    """
    from quickdraw.cache import verify as do_verify

    with friendly_errors():
        report = do_verify(target, version=version, root=root)
    if as_json:
        print_json(report.to_dict())
    else:
        for p in report.problems:
            console.print(f"[bold red]bad:[/] {lit(report.path / p.file)}: {lit(p.reason)} {lit(p.detail)}",
                          highlight=False, soft_wrap=True)
        status = "[bold green]ok[/]" if report.ok else f"[bold red]{len(report.problems)} bad file(s)[/]"
        console.print(
            f"{status}: {lit(report.name)}/{lit(report.version)}, {report.checked} files, {_human(report.bytes)}",
            highlight=False, soft_wrap=True,
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("gc")
def gc(
    root: Path = typer.Option(None, "--root", help=_ROOT_HELP),
    name: str = typer.Option(None, "--name", help="Only collect this dataset."),
    keep: list[str] = typer.Option([], "--keep", help="Also keep this version (id, prefix or name/version); repeatable."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Remove versions other than LATEST, pinned (ROOT/<name>/PINNED) and --keep, and dead builds' temp dirs.

    Example: quickdraw cache gc --keep animals10/3f2a --dry-run
    """
    from quickdraw.cache import gc as do_gc

    with friendly_errors():
        report = do_gc(root, name, keep=keep, dry_run=dry_run)
    if as_json:
        print_json(report.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    for p in report.removed:
        console.print(f"{verb} {lit(p)}", highlight=False, soft_wrap=True)
    for p, why in report.skipped:  # look-alike folders gc cannot prove are its own
        console.print(f"left alone: {lit(p)} ({lit(why)})", highlight=False, soft_wrap=True)
    console.print(f"{verb} {len(report.removed)}, kept {len(report.kept)}, freed {_human(report.freed_bytes)}")
