"""Property-based fuzzing: the manifest reader, the containment helper, the checkpoint validator and the
predict input parser give a named error or a correct result, never an unhandled exception."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from quickdraw._safety import check_relpath, contained
from quickdraw.cache import verify
from quickdraw.cache.store import check_files, open_version
from quickdraw.errors import BadRecordError, CacheError, CheckpointError, QuickDrawError, UnsafePathError
from quickdraw.models import GRUClassifier, ModelConfig
from quickdraw.models.checkpoint import validate_checkpoint
from quickdraw.pipeline.predict import MAX_COORD, check_drawing, parse_line
from quickdraw.strokes import drawing_to_stroke3
from tests.security._cache_helpers import small_cache

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=20,
)
path_text = st.lists(st.sampled_from(["a", "b", "..", ".", "", "/", "\\", "\x00", "C:", "x.npy", "outside.npy",
                                      "fifo", "\n", "é"]),
                     max_size=8).map("".join) | st.text(max_size=20)
# Whole components joined by "/" (finds `b/outside.npy` through the symlink, `a/../x.npy`, ... quickly).
path_parts = st.lists(st.sampled_from(["a", "b", "..", ".", "", "x.npy", "outside.npy", "fifo", "x\x00", "C:",
                                       "a\\x.npy", "/etc"]), min_size=1, max_size=4).map("/".join)


# ----------------------------------------------------------------------------------------- containment
@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sandbox")
    (base / "in").mkdir()
    (base / "in" / "a").mkdir()
    (base / "in" / "x.npy").write_bytes(b"ok")
    (base / "in" / "a" / "x.npy").write_bytes(b"ok")
    (base / "outside.npy").write_bytes(b"secret")
    (base / "in" / "b").symlink_to(base)  # a symlink out of the folder
    os.mkfifo(base / "in" / "fifo")
    return base / "in"


@FUZZ
@given(rel=path_text | path_parts)
@example(rel="b/outside.npy")
@example(rel="../outside.npy")
def test_contained_is_inside_and_regular_or_a_named_error(sandbox: Path, rel: str) -> None:
    try:
        p = contained(sandbox, rel, "fuzz")
    except UnsafePathError:
        return
    real = p.resolve(strict=True)
    assert real.is_relative_to(sandbox.resolve()) and real.is_file()
    assert ".." not in rel.split("/") and not rel.startswith("/") and "\x00" not in rel


@pytest.mark.parametrize("rel", ["../outside.npy", "b/outside.npy", "/etc/passwd", "fifo", "a", "a/../x.npy",
                                 "./x.npy", "a//x.npy", "x.npy/", "C:x.npy", "a\\x.npy", "x\x00.npy", ""])
def test_contained_refuses(sandbox: Path, rel: str) -> None:
    with pytest.raises(UnsafePathError, match="fuzz"):
        contained(sandbox, rel, "fuzz")


def test_contained_accepts_a_plain_file(sandbox: Path) -> None:
    assert contained(sandbox, "a/x.npy", "fuzz") == sandbox / "a" / "x.npy"
    assert check_relpath("stroke3/train/steps.npy") == "stroke3/train/steps.npy"


# ----------------------------------------------------------------------------------------- manifest reader
@pytest.fixture(scope="module")
def cache_version(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return small_cache(tmp_path_factory.mktemp("fuzzcache"))


def _mutate(doc: Any, path: list[Any], value: Any) -> Any:
    node = doc
    for key in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node, key=str)[key % len(node)]]
        elif isinstance(node, list) and node:
            node = node[key % len(node)]
    if isinstance(node, dict) and node and path:
        node[sorted(node, key=str)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node and path:
        node[path[-1] % len(node)] = value
    return doc


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=5), value=json_values,
       rel=st.one_of(st.none(), path_text))
def test_manifest_reader_names_every_problem(cache_version: Any, path: list[int], value: Any, rel: str | None) -> None:
    mpath = cache_version.path / "manifest.json"
    original = mpath.read_text()
    doc = _mutate(json.loads(original), path, value)
    if rel is not None and isinstance(doc.get("files"), dict):
        doc["files"][rel] = {"size": 0, "xxh3_128": "0" * 32}
    try:
        mpath.write_text(json.dumps(doc))
        try:
            cv = open_version(cache_version.path)
            for fmt in cv.formats:
                for split in cv.splits(fmt):
                    check_files(cv, f"{fmt}/{split}/")
            verify(cv)
        except QuickDrawError:
            pass
    finally:
        mpath.write_text(original)


# ----------------------------------------------------------------------------------------- checkpoints
def _good_doc() -> dict[str, Any]:
    torch.manual_seed(0)
    m = GRUClassifier(ModelConfig(n_classes=3, hidden=4, layers=1))
    return {"format": 1, "model_state": m.state_dict(), "model_config": m.config.to_dict(),
            "classes": ["a", "b", "c"], "cache": {"min_len": 6, "max_len": 250, "on_long": "truncate"}}


GOOD = _good_doc()
config_keys = st.sampled_from(["n_classes", "input_size", "hidden", "layers", "dropout", "xy_scale", "pool"])
top_keys = st.sampled_from(["format", "model_state", "model_config", "classes", "cache"])
odd_values = json_values | st.sampled_from([float("inf"), -1, 0, 200_000, 10**12, 3, 4, 1.5, "last", []])


@FUZZ
@given(edits=st.lists(st.tuples(st.booleans(), config_keys, top_keys, odd_values), max_size=3),
       shape=st.one_of(st.none(), st.tuples(st.integers(0, 9), st.integers(0, 9))))
def test_checkpoint_validator_names_every_problem(edits: list[Any], shape: Any) -> None:
    doc = copy.deepcopy(GOOD)
    for in_config, ckey, tkey, value in edits:
        if in_config and isinstance(doc.get("model_config"), dict):
            doc["model_config"][ckey] = value
        else:
            doc[tkey] = value
    if shape is not None and isinstance(doc.get("model_state"), dict) and "head.weight" in doc["model_state"]:
        doc["model_state"]["head.weight"] = torch.zeros(shape)
    try:
        config = validate_checkpoint(doc, "fuzz.pt")
    except CheckpointError as exc:
        assert "fuzz.pt" in str(exc)
        return
    model = GRUClassifier(config)  # what load_checkpoint does next: must fit exactly
    model.load_state_dict(doc["model_state"])
    assert config.hidden <= 4096 and math.isfinite(config.xy_scale) and config.xy_scale > 0
    assert len(doc["classes"]) == config.n_classes


# ----------------------------------------------------------------------------------------- predict input
coord = st.integers(-5, 40_000) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=2) | st.booleans()
strokes = st.lists(st.lists(st.lists(coord, max_size=6), min_size=0, max_size=3) | json_values, max_size=4)


@FUZZ
@given(drawing=strokes | json_values)
def test_drawing_check_gives_a_reason_or_an_int16_exact_drawing(drawing: Any) -> None:
    try:
        checked = check_drawing(drawing, "fuzz", 1)
    except BadRecordError as exc:
        assert exc.reason and "fuzz:1" in str(exc)
        return
    seq = drawing_to_stroke3(checked)
    pts = [(x, y) for s in checked for x, y in zip(s[0], s[1], strict=True)]
    assert all(0 <= v <= MAX_COORD for p in pts for v in p)
    if pts:
        # the int16 deltas add back up to the exact coordinates: nothing wrapped
        assert np.cumsum(seq[:, :2].astype(np.int64), axis=0).tolist() == [list(p) for p in pts]


@FUZZ
@given(line=st.text(max_size=200) | st.binary(max_size=200) | json_values.map(json.dumps)
       | strokes.map(lambda d: json.dumps({"drawing": d}, allow_nan=True)))
def test_line_parser_gives_a_reason_or_a_record(line: Any) -> None:
    try:
        rec = parse_line(line, "fuzz", 3)
    except BadRecordError as exc:
        assert exc.line == 3 and exc.reason
        return
    assert isinstance(rec, dict) and "drawing" in rec
