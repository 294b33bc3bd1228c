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


def _flat(text: str) -> str:
    """``text`` without any whitespace: line breaks a terminal width puts into a long path do not matter."""
    return "".join(text.split())


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
    # The machine-readable report names the bad file exactly ...
    res = runner.invoke(app, ["cache", "verify", built["path"], "--json"])
    assert res.exit_code == 1
    assert "stroke5/train/steps.npy" in [p["file"] for p in json.loads(res.stdout)["problems"]]
    # ... and so does the human one. rich may break a long temp path over lines at 80 columns, so compare
    # with all whitespace removed (the path itself has none).
    res = runner.invoke(app, ["cache", "verify", built["path"]])
    assert res.exit_code == 1 and "stroke5/train/steps.npy" in _flat(res.output)
    assert f"{built['path']}/stroke5/train/steps.npy" in _flat(res.output)

    other = write_synthetic_strokes(tmp_path / "other", ("cat", "dog"), 4, seed=6)
    second = _json(["cache", "build", "--in", str(other), "--name", "animals10", "--root", root, "--json"])
    gone = _json(["cache", "gc", "--root", root, "--json"])
    assert [Path(p).name for p in gone["removed"]] == [built["version"]]
    assert [d["version"] for d in _json(["cache", "ls", "--root", root, "--json"])["datasets"]] == [second["version"]]


def test_errors_are_friendly(tmp_path: Path) -> None:
    res = runner.invoke(app, ["cache", "info", "nope", "--root", str(tmp_path)])
    assert res.exit_code == 2 and "no cached dataset 'nope'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["cache", "build", "--in", str(tmp_path / "missing"), "--name", "x", "--root", str(tmp_path)])
    assert res.exit_code == 2 and "missing" in _flat(res.output)


@pytest.mark.parametrize("drop", ["files", "formats"])
def test_malformed_manifest_is_friendly(strokes: Path, tmp_path: Path, drop: str) -> None:
    built = _json(["cache", "build", "--in", str(strokes), "--name", "animals10", "--root", str(tmp_path), "--json"])
    path = Path(built["path"]) / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest[drop]
    path.write_text(json.dumps(manifest))
    for cmd in ("verify", "info"):  # used to be a KeyError traceback (verify.py, cv.summary())
        res = runner.invoke(app, ["cache", cmd, built["path"]])
        assert res.exit_code == 2 and str(path) in res.output.replace("\n", "") and f"no '{drop}' key" in res.output
        assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert _json(["cache", "ls", "--root", str(tmp_path), "--json"])["datasets"] == []


def test_build_defaults_to_the_prepared_formats(tmp_path: Path) -> None:
    only3 = write_synthetic_strokes(tmp_path / "s", ("cat", "dog"), 5, seed=9, formats=("stroke3",))
    built = _json(["cache", "build", "--in", str(only3), "--name", "a", "--root", str(tmp_path / "c"), "--json"])
    assert list(built["formats"]) == ["stroke3"]
    res = runner.invoke(app, ["cache", "build", "--in", str(only3), "--name", "a", "--root", str(tmp_path / "c"),
                              "--formats", "stroke3,stroke5"])
    assert res.exit_code == 2 and "stroke5" in res.output and "Traceback" not in res.output


def test_ls_lists_the_project_cache(strokes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    built = _json(["cache", "build", "--in", str(strokes), "--name", "animals10",
                   "--root", str(project / "data" / "cache"), "--json"])
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("QUICKDRAW_CACHE", str(tmp_path / "empty"))
    monkeypatch.chdir(project)
    listed = _json(["cache", "ls", "--json"])
    assert [(d["name"], d["version"]) for d in listed["datasets"]] == [("animals10", built["version"])]
    assert listed["root"] == str(tmp_path / "empty") and listed["roots"][1] == str(project / "data" / "cache")
    res = runner.invoke(app, ["cache", "ls"])
    assert res.exit_code == 0 and "animals10" in res.output
    assert _json(["cache", "ls", "--root", str(tmp_path / "empty"), "--json"])["datasets"] == []


def test_unexpandable_root_is_friendly(strokes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_CACHE", "~no-such-user-qd/cache")
    for args in (["build", "--in", str(strokes), "--name", "a"], ["ls"], ["info", "a"]):
        res = runner.invoke(app, ["cache", *args])
        assert res.exit_code == 2 and "QUICKDRAW_CACHE" in res.output and "Traceback" not in res.output, args
