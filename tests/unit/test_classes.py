from __future__ import annotations

from pathlib import Path

import pytest

from quickdraw.classes import PRESETS, UnknownClassError, all_classes, closest, resolve_classes


def test_345_unique_categories() -> None:
    names = all_classes()
    assert len(names) == 345 == len(set(names))
    assert "The Eiffel Tower" in names and "cat" in names


def test_presets_are_valid_categories() -> None:
    assert PRESETS["animals10"] == (
        "butterfly", "cow", "elephant", "giraffe", "monkey", "octopus", "scorpion", "shark", "snake", "spider",
    )
    for members in PRESETS.values():
        assert set(members) <= set(all_classes())


def test_resolve_list_preset_all_and_dedup() -> None:
    assert resolve_classes("cat, The Eiffel Tower,cat") == ["cat", "The Eiffel Tower"]
    assert resolve_classes('"cat","dog"') == ["cat", "dog"]
    assert resolve_classes("animals10,cat")[-1] == "cat"
    assert len(resolve_classes("all")) == 345
    assert resolve_classes("CAT") == ["cat"]  # case-insensitive, canonical spelling out


def test_resolve_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.txt"
    f.write_text("# my classes\ncat\nThe Mona Lisa  # famous\n\nanimals10\n")
    got = resolve_classes(f"@{f}")
    assert got[:2] == ["cat", "The Mona Lisa"] and len(got) == 12
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        resolve_classes(f"@{tmp_path / 'missing.txt'}")


def test_unknown_names_suggest_closest() -> None:
    with pytest.raises(UnknownClassError) as e:
        resolve_classes("cat,elefant")
    assert e.value.name == "elefant"
    assert "elephant" in e.value.suggestions
    assert "elephant" in str(e.value)
    assert closest("animals1")[0] == "animals10"
    with pytest.raises(ValueError, match="empty class spec"):
        resolve_classes(" , ")
