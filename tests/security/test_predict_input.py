"""Hostile predict input is a per-line reason; the other lines are still predicted (issue 12).

Before: ``Infinity`` (json accepted it) crashed the run with an OverflowError traceback, a 1e11 coordinate too,
100k-deep JSON raised RecursionError, a dict as a stroke a KeyError; a coordinate of 40000 silently wrapped
to a negative int16 delta; the first malformed line ended the whole run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.pipeline import predict as predict_mod
from quickdraw.pipeline.predict import predict_records, read_ndjson
from tests.security.test_checkpoints import good_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
XS = list(range(10, 50, 5))  # 8 points: above min_len 6


def _line(xs: object, key: str) -> str:
    return json.dumps({"key_id": key, "drawing": [[xs, [20] * 8]]}) if not isinstance(xs, str) else xs


BAD = {  # line text -> the reason predict must give
    '{"key_id": "inf", "drawing": [[[10, Infinity, 20, 25, 30, 35, 40, 45], [20, 20, 20, 20, 20, 20, 20, 20]]]}':
        "non-finite number",
    '{"key_id": "nan", "drawing": [[[10, NaN, 20, 25, 30, 35, 40, 45], [20, 20, 20, 20, 20, 20, 20, 20]]]}':
        "non-finite number",
    '{"key_id": "big", "drawing": [[[10, 1e400, 20, 25, 30, 35, 40, 45], [20, 20, 20, 20, 20, 20, 20, 20]]]}':
        "non-finite number",
    _line([10, 1e11, 20, 25, 30, 35, 40, 45], "1e11"): "coordinate out of range",
    _line([10, 40000, 20, 25, 30, 35, 40, 45], "40000"): "coordinate out of range",
    _line([10, -5, 20, 25, 30, 35, 40, 45], "neg"): "coordinate out of range",
    "[" * 100_000 + "]" * 100_000: "too deep",
    '{"drawing": ' + "[" * 200 + "]" * 200 + "}": "too deep",
    json.dumps({"key_id": "dict", "drawing": [{"x": XS, "y": [20] * 8}]}): "wrong type",
    json.dumps({"key_id": "str", "drawing": [[["10"] * 8, [20] * 8]]}): "wrong type",
    json.dumps({"key_id": "bool", "drawing": [[[True] * 8, [20] * 8]]}): "wrong type",
    json.dumps({"key_id": "frac", "drawing": [[[10.5] * 8, [20] * 8]]}): "wrong type",
    json.dumps({"key_id": "drawing-str", "drawing": "cat"}): "wrong type",
    json.dumps({"key_id": "mismatch", "drawing": [[XS, [20] * 7]]}): "bad drawing",
    "{not json": "malformed JSON",
    "[1, 2]": "missing key",
}


def _input() -> tuple[str, list[tuple[int, str | None]]]:
    lines, want = [], []
    for i, (text, reason) in enumerate(BAD.items()):
        lines.append(_line(XS, f"good{i}"))
        want.append((len(lines), None))
        lines.append(text)
        want.append((len(lines), reason))
    return "\n".join(lines) + "\n", want


def test_each_bad_line_gets_its_reason_and_the_rest_is_predicted(tmp_path: Path) -> None:
    ckpt = good_checkpoint(tmp_path / "m.pt")
    text, want = _input()
    src = tmp_path / "in.ndjson"
    src.write_text(text)
    res = runner.invoke(app, ["predict", "--checkpoint", str(ckpt), str(src), "--json"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    out = json.loads(res.stdout)
    assert [(d["line"], d.get("error")) for d in out] == want
    for d in out:
        if d.get("error") is None:
            assert len(d["top"]) == 3 and d["key_id"].startswith("good")
        else:
            assert d["top"] == [] and d["skipped"]
    # the human table names the reasons too
    res = runner.invoke(app, ["predict", "--checkpoint", str(ckpt), str(src)])
    assert "Traceback" not in res.output and "non-finite number" in res.output and "too deep" in res.output


def test_exit_code_says_some_lines_were_bad(tmp_path: Path) -> None:
    ckpt = good_checkpoint(tmp_path / "m.pt")
    src = tmp_path / "in.ndjson"
    src.write_text(_line(XS, "good") + "\n" + "{not json\n")
    res = runner.invoke(app, ["predict", "--checkpoint", str(ckpt), str(src), "--json"])
    assert res.exit_code == 2 and json.loads(res.stdout)[1]["error"] == "malformed JSON"


def test_only_bad_lines_is_an_error_naming_the_line(tmp_path: Path) -> None:
    ckpt = good_checkpoint(tmp_path / "m.pt")
    res = runner.invoke(app, ["predict", "--checkpoint", str(ckpt), "-"], input=_line([10, 40000] + XS[2:], "w") + "\n")
    assert res.exit_code == 2 and "<stdin>:1" in res.output and "outside 0..32767" in res.output


def test_40000_never_wraps_to_int16(monkeypatch: pytest.MonkeyPatch) -> None:
    fed: list[np.ndarray] = []
    monkeypatch.setattr(predict_mod, "classify",
                        lambda m, seqs, batch_size=256: (fed.extend(seqs), np.full((len(seqs), 3), 1 / 3))[1])
    info = {"classes": ["a", "b", "c"]}
    recs = [(1, {"drawing": [[[0, 32767, 0, 32767, 0, 32767], [0] * 6]]}), (2, {"drawing": [[[0, 40000] * 3, [0] * 6]]})]
    preds = predict_records(None, info, recs)  # type: ignore[arg-type]
    assert preds[0].error is None and preds[1].error == "coordinate out of range"
    assert len(fed) == 1 and fed[0][:, 0].tolist() == [0, 32767, -32767, 32767, -32767, 32767]


def test_overlong_line_is_skipped_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predict_mod, "MAX_LINE_CHARS", 1000)
    good = _line(XS, "g")
    stream = io.StringIO(good + "\n" + '{"drawing": [[' + "1, " * 5000 + "1]]]}\n" + good + "\n")
    got = [(n, getattr(r, "reason", None)) for n, r in read_ndjson(stream)]
    assert got == [(1, None), (2, "line too long"), (3, None)]
