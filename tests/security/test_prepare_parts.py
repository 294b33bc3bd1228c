"""prepare opens only the parts inside each class folder that its fetch manifest lists (issue 12).

Before: a ``parts`` entry ``../victim.parquet`` (or an absolute path) was opened and its rows prepared as
the class's drawings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.pipeline.fetch import FetchOptions, fetch
from tests.conftest import copy_class_files

runner = CliRunner()


@pytest.fixture()
def fetched(tmp_path: Path, shared_data: Path) -> Path:
    source = copy_class_files(shared_data, ["cat", "house"], tmp_path / "mirror")
    raw = tmp_path / "raw"
    fetch("cat,house", raw, FetchOptions(source=str(source)))
    return raw


def _point_part_at(raw: Path, entry: str) -> None:
    m = json.loads((raw / "cat" / "_manifest.json").read_text())
    m["parts"][0]["file"] = entry
    (raw / "cat" / "_manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink"])
def test_prepare_refuses_a_part_outside_its_class_folder(fetched: Path, tmp_path: Path, where: str) -> None:
    part = fetched / "cat" / json.loads((fetched / "cat" / "_manifest.json").read_text())["parts"][0]["file"]
    victim = tmp_path / "victim.parquet"
    shutil.copy(part, victim)  # a perfectly readable Parquet file, just not the class's
    if where == "dotdot":
        shutil.copy(part, fetched / "victim.parquet")
        _point_part_at(fetched, "../victim.parquet")
        shown = "'../victim.parquet' is outside its folder"
    elif where == "absolute":
        _point_part_at(fetched, str(victim))
        shown = "is absolute"
    else:
        part.unlink()
        part.symlink_to(victim)
        shown = "is outside its folder"
    res = runner.invoke(app, ["prepare", "--in", str(fetched), "--out", str(tmp_path / "strokes")])
    assert res.exit_code == 2, res.output
    assert shown in res.output.replace("\n", "") and "_manifest.json" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "strokes" / "_manifest.json").exists()


def test_prepare_still_reads_a_sound_fetch_output(fetched: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["prepare", "--in", str(fetched), "--out", str(tmp_path / "strokes")])
    assert res.exit_code == 0, res.output
