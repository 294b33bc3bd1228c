"""A cache tampered without changing any file size is a named CacheError on load, and verify names it.

Before: labels out of range, offsets that decrease or an empty class list loaded fine and failed later with
an IndexError traceback (``ds.word(i)``, ``to_polars``) or gave silently empty or wrong sequences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from typer.testing import CliRunner

import quickdraw
from quickdraw.cache import file_checksum, verify
from quickdraw.cli.app import app
from quickdraw.errors import CacheError
from tests.security._cache_helpers import rewrite_manifest, small_cache

runner = CliRunner()


def _poke(path: Path, edit: Callable[[np.ndarray], None]) -> None:
    arr = np.load(path, mmap_mode="r+")
    edit(arr)
    arr.flush()
    del arr


def _labels_out_of_range(d: Path) -> None:
    _poke(d / "labels.npy", lambda a: a.__setitem__(0, 99))


def _negative_label(d: Path) -> None:
    _poke(d / "labels.npy", lambda a: a.__setitem__(-1, -1))


def _offsets_decrease(d: Path) -> None:
    def edit(a: np.ndarray) -> None:
        a[2] = a[1] - 1

    _poke(d / "offsets.npy", edit)


def _offsets_overrun(d: Path) -> None:
    _poke(d / "offsets.npy", lambda a: a.__setitem__(-1, a[-1] + 1000))


TAMPER: dict[str, tuple[Callable[[Path], None], str]] = {
    "labels_out_of_range": (_labels_out_of_range, "labels run"),
    "negative_label": (_negative_label, "labels run"),
    "offsets_decrease": (_offsets_decrease, "offsets decrease"),
    "offsets_overrun": (_offsets_overrun, "offsets run from"),
}


@pytest.mark.parametrize("attack", sorted(TAMPER))
def test_tampered_arrays_are_named_on_load_and_by_verify(tmp_path: Path, attack: str) -> None:
    cv = small_cache(tmp_path)
    d = cv.path / "stroke3" / "train"
    sizes = {p.name: p.stat().st_size for p in d.iterdir()}
    tamper, words = TAMPER[attack]
    tamper(d)
    assert {p.name: p.stat().st_size for p in d.iterdir()} == sizes  # nothing the cheap size check sees
    with pytest.raises(CacheError, match=words):
        quickdraw.load(cv.path, split="train")
    # plain tampering: the checksum names the file
    assert any(p.reason == "checksum" for p in verify(cv.path).problems)
    # a tamperer who also rewrites the manifest's checksums: the content check names the split
    rewrite_manifest(cv.path, lambda m: [m["files"][f"stroke3/train/{n}"].__setitem__("xxh3_128", file_checksum(d / n))
                                         for n in sizes if f"stroke3/train/{n}" in m["files"]])
    report = verify(cv.path)
    assert [(p.file, p.reason) for p in report.problems] == [("stroke3/train", "content")]
    assert words in report.problems[0].detail
    res = runner.invoke(app, ["cache", "verify", str(cv.path)])
    assert res.exit_code == 1 and "content" in res.output and "Traceback" not in res.output
    assert len(quickdraw.load(cv.path, split="test")) > 0  # the other splits stay usable


def test_lengths_disagreeing_with_offsets_are_found_by_verify(tmp_path: Path) -> None:
    cv = small_cache(tmp_path)
    d = cv.path / "stroke3" / "train"
    _poke(d / "lengths.npy", lambda a: a.__setitem__(0, a[0] + 1))
    rewrite_manifest(cv.path, lambda m: m["files"]["stroke3/train/lengths.npy"].__setitem__(
        "xxh3_128", file_checksum(d / "lengths.npy")))
    report = verify(cv.path)
    assert [(p.file, p.reason) for p in report.problems] == [("stroke3/train", "content")]
    assert "lengths[0]" in report.problems[0].detail


@pytest.mark.parametrize("classes, words", [([], "empty class list"), (["cat", 3, "apple"], "non-empty strings"),
                                             (["cat", "cat", "apple"], "duplicates"), ("cat", "expected a list")])
def test_a_bad_class_list_is_a_named_error(tmp_path: Path, classes: Any, words: str) -> None:
    cv = small_cache(tmp_path)
    rewrite_manifest(cv.path, lambda m: m.__setitem__("classes", classes))
    with pytest.raises(CacheError, match=words):
        quickdraw.load(cv.path, split="train")
    res = runner.invoke(app, ["cache", "verify", str(cv.path)])
    assert res.exit_code == 2 and words in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("edit, words", [
    (lambda m: m["formats"]["stroke3"]["splits"]["train"].__setitem__("n", -1), "'n', 'steps' and 'max_length'"),
    (lambda m: m["formats"]["stroke3"].__setitem__("channels", 7), "'channels' = 3"),
    (lambda m: m["formats"]["stroke3"].__setitem__("norm_scale", 0), "norm_scale"),
    (lambda m: m["formats"]["stroke3"]["splits"]["train"].__setitem__("steps", 1), "steps.npy has shape"),
    (lambda m: m["formats"]["stroke3"]["splits"]["train"].__setitem__("n", 1), "array lengths disagree"),
])
def test_manifest_counts_that_disagree_with_the_arrays(tmp_path: Path, edit: Callable[[dict], None], words: str) -> None:
    cv = small_cache(tmp_path)
    rewrite_manifest(cv.path, edit)
    with pytest.raises(CacheError, match=words.replace("(", r"\(").replace(")", r"\)")):
        quickdraw.load(cv.path, split="train")


def test_opening_stays_cheap_on_a_real_cache(tmp_path: Path) -> None:
    cv = small_cache(tmp_path, n=200)
    ds = quickdraw.load(cv.path, split="train")
    assert len(ds) > 0 and ds.word(0) in ds.classes
    assert verify(cv.path).ok
    assert json.loads((cv.path / "manifest.json").read_text())["classes"] == list(ds.classes)
