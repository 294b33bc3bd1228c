"""`quickdraw cache build|ls|info|verify|gc` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def strokes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_strokes(tmp_path_factory.mktemp("strokes"), ("cat", "dog"), 12, seed=5)


def _json(args: list[str]) -> dict:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_help_has_examples() -> None:
    for cmd in ("build", "ls", "info", "verify", "gc"):
        res = runner.invoke(app, ["cache", cmd, "--help"])
        assert res.exit_code == 0 and "Example: quickdraw cache" in res.output, cmd


def test_build_ls_info_verify_gc(strokes: Path, tmp_path: Path) -> None:
    root = str(tmp_path)
    built = _json(["cache", "build", "--in", str(strokes), "--name", "animals10", "--root", root, "--json"])
    assert built["name"] == "animals10" and built["latest"] and built["classes"] == ["cat", "dog"]
    listed = _json(["cache", "ls", "--root", root, "--json"])
    assert [d["version"] for d in listed["datasets"]] == [built["version"]]
    info = _json(["cache", "info", "animals10", "--root", root, "--json"])
    assert info["formats"]["stroke3"]["train"]["n"] > 0
    assert _json(["cache", "verify", "animals10", "--root", root, "--json"])["ok"] is True
    res = runner.invoke(app, ["cache", "info", "animals10", "--root", root])
    assert res.exit_code == 0 and "stroke5" in res.output

    steps = Path(built["path"]) / "stroke5" / "train" / "steps.npy"
    steps.write_bytes(steps.read_bytes()[:-2])
    res = runner.invoke(app, ["cache", "verify", built["path"]])
    assert res.exit_code == 1 and "stroke5/train/steps.npy" in res.output

    other = write_synthetic_strokes(tmp_path / "other", ("cat", "dog"), 4, seed=6)
    second = _json(["cache", "build", "--in", str(other), "--name", "animals10", "--root", root, "--json"])
    gone = _json(["cache", "gc", "--root", root, "--json"])
    assert [Path(p).name for p in gone["removed"]] == [built["version"]]
    assert [d["version"] for d in _json(["cache", "ls", "--root", root, "--json"])["datasets"]] == [second["version"]]


def test_errors_are_friendly(tmp_path: Path) -> None:
    res = runner.invoke(app, ["cache", "info", "nope", "--root", str(tmp_path)])
    assert res.exit_code == 2 and "no cached dataset 'nope'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["cache", "build", "--in", str(tmp_path / "missing"), "--name", "x", "--root", str(tmp_path)])
    assert res.exit_code == 2 and "missing" in res.output
