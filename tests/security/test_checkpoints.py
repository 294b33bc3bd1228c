"""Malformed checkpoints are one line and exit 2, checked before anything is allocated (issue 12).

Before: no ``classes`` -> KeyError traceback; a string ``model_config`` -> TypeError traceback;
``hidden=200000`` -> tried to allocate ~480 GB; ``xy_scale=0`` -> NaN probabilities and exit 0.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.models import GRUClassifier, ModelConfig, save_checkpoint
from tests.security._cache_helpers import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
CLASSES = ["circle", "line", "zigzag"]
LINE = json.dumps({"key_id": "1", "drawing": [[list(range(10, 50, 5)), [20] * 8]]}) + "\n"


def good_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = GRUClassifier(ModelConfig(n_classes=3, hidden=8, layers=1, xy_scale=4.0))
    return save_checkpoint(path, model, classes=list(CLASSES),
                           cache={"name": "mini", "version": "abc", "min_len": 6, "max_len": 250, "on_long": "truncate"})


def variant(tmp: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    good = good_checkpoint(tmp / "good.pt")
    doc = torch.load(good, weights_only=True)
    edit(doc)
    bad = tmp / "models" / "best.pt"
    bad.parent.mkdir(exist_ok=True)
    torch.save(doc, bad)
    return bad


def _cfg(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["model_config"].__setitem__(key, value)


def _nan_weight(d: dict[str, Any]) -> None:
    d["model_state"]["head.bias"][0] = float("nan")


ATTACKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no_classes": (lambda d: d.pop("classes"), "no class list"),
    "empty_classes": (lambda d: d.__setitem__("classes", []), "non-empty list"),
    "classes_not_strings": (lambda d: d.__setitem__("classes", [1, 2, 3]), "classes[0]"),
    "classes_count": (lambda d: d.__setitem__("classes", ["a", "b"]), "n_classes=3"),
    "string_config": (lambda d: d.__setitem__("model_config", "hidden=8"), "model_config is a str"),
    "hidden_huge": (_cfg("hidden", 200_000), "hidden=200000 exceeds the maximum 4096"),
    "layers_huge": (_cfg("layers", 10_000), "layers=10000 exceeds the maximum"),
    "n_classes_huge": (_cfg("n_classes", 10**9), "n_classes=1000000000 exceeds the maximum"),
    "hidden_string": (_cfg("hidden", "8"), "hidden='8' is not an integer"),
    "xy_scale_zero": (_cfg("xy_scale", 0), "xy_scale=0 is not a finite number > 0"),
    "xy_scale_nan": (_cfg("xy_scale", float("nan")), "xy_scale=nan"),
    "pool_unknown": (_cfg("pool", "max"), "pool='max'"),
    "shape_mismatch": (_cfg("hidden", 16), "has shape"),
    "nan_weights": (_nan_weight, "NaN or infinite weights"),
    "state_not_dict": (lambda d: d.__setitem__("model_state", [1, 2]), "model_state is a list"),
    "cache_string": (lambda d: d.__setitem__("cache", "mini"), "cache is a str"),
    "max_len_string": (lambda d: d["cache"].__setitem__("max_len", "250"), "cache.max_len='250'"),
    "on_long_unknown": (lambda d: d["cache"].__setitem__("on_long", "wrap"), "cache.on_long='wrap'"),
    "not_a_dict": (None, "not a quickdraw checkpoint"),  # type: ignore[dict-item]
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_malformed_checkpoint_is_one_line_and_exit_2(tmp_path: Path, attack: str) -> None:
    edit, words = ATTACKS[attack]
    if edit is None:
        bad = tmp_path / "models" / "best.pt"
        bad.parent.mkdir()
        torch.save([1, 2, 3], bad)
    else:
        bad = variant(tmp_path, edit)
    src = tmp_path / "in.ndjson"
    src.write_text(LINE)
    res = runner.invoke(app, ["predict", "--checkpoint", str(bad), str(src), "--json"])
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert res.stdout == "" and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert words in lines[0] and str(bad) in lines[0]


def test_good_checkpoint_still_predicts(tmp_path: Path) -> None:
    good = good_checkpoint(tmp_path / "good.pt")
    src = tmp_path / "in.ndjson"
    src.write_text(LINE)
    res = runner.invoke(app, ["predict", "--checkpoint", str(good), str(src), "--json"])
    assert res.exit_code == 0, res.output
    top = json.loads(res.stdout)[0]["top"]
    assert len(top) == 3 and abs(sum(t["prob"] for t in top) - 1) < 1e-5


def _limit_memory() -> None:  # runs in the child: 3 GiB of address space, far below 480 GB
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_huge_hidden_fails_before_allocating(tmp_path: Path) -> None:
    bad = variant(tmp_path, _cfg("hidden", 200_000))
    src = tmp_path / "in.ndjson"
    src.write_text(LINE)
    t0 = time.monotonic()
    res = run_cli("predict", "--checkpoint", str(bad), str(src), timeout=120, preexec=_limit_memory,
                  env={"OMP_NUM_THREADS": "1"})
    assert time.monotonic() - t0 < 120
    assert res.returncode == 2, res.stderr
    assert "hidden=200000 exceeds the maximum 4096" in res.stderr.replace("\n", "")
    assert "Traceback" not in res.stderr and "allocate" not in res.stderr
