"""Splits as users get them: fetch -> prepare, then again on the same drawings reordered, with more drawings and
with another class; every drawing must keep its split, and that split must be FORMATS.md's hash rule.

The split unit tests call ``assign_splits`` directly; these go through ``fetch`` and ``prepare`` so that a
prepare wired to anything but the key id (a row position, a label, a class) fails here.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.pipeline.prepare import prepare

SPLITS = ("train", "val", "test")
SEED = 3
FRACTIONS = (0.6, 0.2, 0.2)  # wide val/test shares so that every split holds many drawings


def hash_rule(key_id: int, seed: int = SEED, fractions: tuple[float, float, float] = FRACTIONS) -> str:
    """FORMATS.md section 2, rule 3, written out independently with Python integers: SplitMix64's finaliser of
    ``key_id + (seed + 1) * 0x9E3779B97F4A7C15``, top 53 bits / 2^53, against the cumulative fractions."""
    mask = (1 << 64) - 1
    z = (key_id + (seed + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    u = (z >> 11) / 2.0**53
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "val"
    return "test"


def write_source(shared: Path, dest: Path, words: list[str], *, shuffle_seed: int | None = None) -> Path:
    """Class files from the shared mirror in a local source folder, optionally with their lines shuffled."""
    dest.mkdir(parents=True)
    for w in words:
        lines = (shared / "full" / "simplified" / f"{w}.ndjson").read_bytes().splitlines()
        lines = [ln for ln in lines if ln.strip()]
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(lines)
        (dest / f"{w}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return dest


def splits_of(out: Path, fmt: str) -> dict[int, str]:
    """key_id -> split as prepare wrote it; fails if a drawing is in two splits."""
    got: dict[int, str] = {}
    for split in SPLITS:
        for p in sorted((out / fmt / split).glob("part-*.parquet")):
            for k in pq.read_table(p, columns=["key_id"]).column("key_id").to_pylist():
                assert k not in got, f"key_id {k} in both {got[k]} and {split}"
                got[k] = split
    return got


@pytest.fixture(scope="module")
def runs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[int, str]]]:
    base = tmp_path_factory.mktemp("splits")
    first = ["cat", "dog", "monkey"]
    # Run 1: three classes, capped (monkey has 800 drawings, so the cap cuts it to its first 120).
    src1 = write_source(shared_data, base / "src1", first)
    fetch(first, base / "raw1", FetchOptions(source=str(src1), max_per_class=120))
    prepare(base / "raw1", base / "out1", seed=SEED, fractions=FRACTIONS)
    # Run 2: the same classes with every file's lines shuffled, no cap (more drawings), and a class added
    # whose name sorts first, so every label of run 1 moves by one.
    more = ["apple", *first]
    src2 = write_source(shared_data, base / "src2", more, shuffle_seed=11)
    fetch(more, base / "raw2", FetchOptions(source=str(src2)))
    prepare(base / "raw2", base / "out2", seed=SEED, fractions=FRACTIONS)
    manifest2 = json.loads((base / "out2" / "_manifest.json").read_text())
    assert manifest2["classes"] == sorted(more)
    return {
        name: {fmt: splits_of(base / name, fmt) for fmt in ("stroke3", "stroke5")} for name in ("out1", "out2")
    }


def test_every_split_is_the_hash_rule_of_the_key_id(runs: dict[str, dict[str, dict[int, str]]]) -> None:
    for name, by_fmt in runs.items():
        got = by_fmt["stroke3"]
        assert len(got) > 150, (name, len(got))
        assert {s: sum(v == s for v in got.values()) > 15 for s in SPLITS} == dict.fromkeys(SPLITS, True)
        wrong = {k: (s, hash_rule(k)) for k, s in got.items() if s != hash_rule(k)}
        assert not wrong, f"{name}: {len(wrong)} of {len(got)} drawings not in their hash-rule split, e.g. {list(wrong.items())[:3]}"
        assert by_fmt["stroke5"] == got  # both formats put each drawing in the same split


def test_reorder_more_drawings_and_a_new_class_move_no_drawing(runs: dict[str, dict[str, dict[int, str]]]) -> None:
    before, after = runs["out1"]["stroke3"], runs["out2"]["stroke3"]
    assert len(after) > len(before)
    missing = [k for k in before if k not in after]
    assert not missing, f"drawings of run 1 absent from run 2: {missing[:5]}"
    moved = {k: (before[k], after[k]) for k in before if after[k] != before[k]}
    assert not moved, f"{len(moved)} of {len(before)} drawings changed split, e.g. {list(moved.items())[:3]}"
