"""The notebook example in README.md runs, as written, against a synthetic cache."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.classes import PRESETS

DOC = Path(__file__).resolve().parents[2] / "README.md"


def test_notebook_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text(encoding="utf-8").split("<!-- notebook-example", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)[:1]
    assert blocks, "README.md lost its notebook example"
    strokes = write_synthetic_strokes(tmp_path / "strokes", PRESETS["animals10"], 30, seed=7)
    monkeypatch.setenv("QUICKDRAW_CACHE", str(tmp_path / "cache"))
    build_cache(strokes, None, "animals10")
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    assert "['animals10']" in out and "butterfly" in out
    batch = namespace["batch"]
    assert batch["x"].ndim == 3 and batch["x"].shape[0] == 64  # type: ignore[index]
    assert namespace["fig"].axes  # type: ignore[attr-defined]
