"""``@file`` class lists: only a small regular text file is read, and only name-like text is ever echoed.

Before: ``quickdraw classes @/etc/shadow`` printed the file's first line in its error; ``@/dev/zero`` read
forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from quickdraw.classes import resolve_classes
from quickdraw.cli.app import app

runner = CliRunner()


def test_a_secret_file_is_not_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3t-hash:20228:0:99999:7:::\n")
    r = runner.invoke(app, ["classes", f"@{secret}"])
    assert r.exit_code == 2 and "s3cr3t" not in r.output and "Traceback" not in r.output
    assert f"{secret} line 1 is not a class name" in r.output.replace("\n", "")
    r = runner.invoke(app, ["fetch", "-c", f"@{secret}", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "s3cr3t" not in r.output and not (tmp_path / "o").exists()


def test_a_typo_in_a_class_list_is_still_named(tmp_path: Path) -> None:
    f = tmp_path / "mine.txt"
    f.write_text("cat  # pets\nelefant\n")
    with pytest.raises(ValueError, match="'elefant'; did you mean 'elephant'"):
        resolve_classes(f"@{f}")
    f.write_text("cat, The Eiffel Tower\n\n# comment\ndog\n")
    assert resolve_classes(f"@{f}") == ["cat", "The Eiffel Tower", "dog"]


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/stdin"])
def test_special_files_are_refused_at_once(special: str) -> None:
    with pytest.raises(ValueError, match="not a regular file"):
        resolve_classes(f"@{special}")


def test_huge_or_binary_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"cat\n" * (300_000))
    with pytest.raises(ValueError, match="at most"):
        resolve_classes(f"@{big}")
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\xff\xfe\x00cat")
    with pytest.raises(ValueError, match="not UTF-8"):
        resolve_classes(f"@{binary}")
