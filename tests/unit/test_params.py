"""Train params are checked by type and range, through the real CLI: one line naming key, value and what is
allowed, exit 2, no traceback (issue 11, item 4). Also the schedule planned from the size of the train split
(item 5): batch size, steps per epoch and warm-up."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.errors import QuickDrawError
from quickdraw.pipeline import train as train_mod
from quickdraw.pipeline.train import ParamError, TrainParams, check_param, load_params, plan_schedule

REPO = Path(__file__).resolve().parents[2]

# (--set item, key named in the message, value as shown, words of what is allowed)
BAD_SETS = [
    ("train.epochs=abc", "train.epochs", "'abc'", "an integer with 1 <= value"),
    ("train.lr=nan", "train.lr", "'nan'", "a finite number > 0"),
    ("train.lr=.nan", "train.lr", "nan", "a finite number > 0"),
    ("train.lr=inf", "train.lr", "'inf'", "a finite number > 0"),
    ("train.lr=-.inf", "train.lr", "-inf", "a finite number > 0"),
    ("train.lr=-1", "train.lr", "-1", "a finite number > 0"),
    ("train.epochs=-1", "train.epochs", "-1", "an integer with 1 <= value"),
    ("train.epochs=true", "train.epochs", "True", "an integer with 1 <= value"),
    ("train.hidden=1.5", "train.hidden", "1.5", "an integer with 1 <= value <= 4096"),
    ("train.dropout=1", "train.dropout", "1", "0 <= value < 1"),
    ("train.dropout=abc", "train.dropout", "'abc'", "0 <= value < 1"),
    ("train.warmup=1.5", "train.warmup", "1.5", "0 <= value <= 1"),
    ("train.batch_size=0", "train.batch_size", "0", "an integer with 1 <= value"),
    ("train.max_steps_per_epoch=0", "train.max_steps_per_epoch", "0", "an integer with 1 <= value <= 1000000000 or null"),
    ("train.pool=max", "train.pool", "'max'", "one of last, mean, last+mean"),
    ("seed=-3", "train.seed", "-3", "0 <= value <= 4294967295"),
    ("train.device=tpu", "train.device", "'tpu'", "auto, cpu, cuda, cuda:N or mps"),
    ("train.device=cuda:x", "train.device", "'cuda:x'", "cuda:N"),
    ("train.arch=transformer", "train.arch", "'transformer'", "one of bigru, gru, lstm, bilstm, conv-bigru"),
    ("train.layer_norm=1", "train.layer_norm", "1", "true or false"),
    ("train.conv_kernel=4", "train.conv_kernel", "4", "an odd integer"),
    ("train.conv_kernel=99", "train.conv_kernel", "99", "1 <= value <= 63"),
    ("train.aug_rotate=-5", "train.aug_rotate", "-5", "0 <= value <= 180"),
    ("train.aug_stroke_dropout=1", "train.aug_stroke_dropout", "1", "0 <= value <= 0.95"),
    ("train.precision=fp8", "train.precision", "'fp8'", "one of fp32, bf16, fp16"),
]


def _one_line_error(res: object) -> str:
    out = res.output  # type: ignore[attr-defined]
    assert res.exit_code == 2, out  # type: ignore[attr-defined]
    assert "Traceback" not in out and "File \"" not in out, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("error: "), out
    return lines[0]


@pytest.mark.parametrize(("item", "key", "shown", "allowed"), BAD_SETS)
def test_cli_set_rejects_bad_values_in_one_line(item: str, key: str, shown: str, allowed: str) -> None:
    res = CliRunner().invoke(app, ["train", "--cache", "none", "--set", item])
    line = _one_line_error(res)
    assert key in line and shown in line and allowed in line and f"--set {item}" in line, line


def test_cli_params_file_values_are_checked_naming_the_file(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    for body, key, shown, allowed in [
        ("train:\n  epochs: abc\n", "train.epochs", "'abc'", "an integer with 1 <= value"),
        ("train:\n  lr: .nan\n", "train.lr", "nan", "a finite number > 0"),
        ("train:\n  lr: .inf\n", "train.lr", "inf", "a finite number > 0"),
        ("train:\n  patience: -1\n", "train.patience", "-1", "an integer with 1 <= value"),
        ("train:\n  epochs: true\n", "train.epochs", "True", "an integer with 1 <= value"),
        ("train:\n  epochs: 1.5\n", "train.epochs", "1.5", "an integer with 1 <= value"),
        ("seed: 1.5\ntrain: {}\n", "train.seed", "1.5", "an integer"),
    ]:
        f.write_text(body)
        line = _one_line_error(CliRunner().invoke(app, ["train", "--cache", "none", "--params", str(f)]))
        assert key in line and shown in line and allowed in line and str(f) in line, line


def test_cli_unknown_key_names_the_closest(tmp_path: Path) -> None:
    line = _one_line_error(CliRunner().invoke(app, ["train", "--cache", "none", "--set", "train.epoch=3"]))
    assert "unknown train param 'epoch'" in line and "did you mean 'epochs'" in line and "--set train.epoch=3" in line
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  warmup_step: 30\n")
    line = _one_line_error(CliRunner().invoke(app, ["train", "--cache", "none", "--params", str(f)]))
    assert "'warmup_step'" in line and "did you mean 'warmup_steps'" in line and str(f) in line
    f.write_text("train: [1, 2]\n")
    line = _one_line_error(CliRunner().invoke(app, ["train", "--cache", "none", "--params", str(f)]))
    assert "expected a mapping of train params" in line
    f.write_text("train: {a: 1\n")
    line = _one_line_error(CliRunner().invoke(app, ["train", "--cache", "none", "--params", str(f)]))
    assert "not valid YAML" in line and str(f) in line


def test_cli_cuda_device_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _one_line_error(CliRunner().invoke(app, ["train", "--cache", "none", "--set", "train.device=cuda:7"]))
    assert "train.device" in line and "'cuda:7'" in line and "CUDA is not available" in line
    for cmd in (["evaluate", "--checkpoint", "x.pt"], ["predict", "--checkpoint", "x.pt", "-"]):
        line = _one_line_error(CliRunner().invoke(app, [*cmd, "--device", "cuda:7"]))
        assert "--device" in line and "'cuda:7'" in line and "CUDA is not available" in line


def test_cli_cuda_device_number_beyond_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    line = _one_line_error(CliRunner().invoke(app, ["train", "--cache", "none", "--set", "train.device=cuda:7"]))
    assert "'cuda:7'" in line and "2 CUDA device(s), cuda:0 to cuda:1" in line
    assert check_param("device", "cuda:1") == "cuda:1" and check_param("device", "cuda") == "cuda"


def test_cli_evaluate_predict_options() -> None:
    for cmd in (["evaluate", "--checkpoint", "x.pt"], ["predict", "--checkpoint", "x.pt", "-"]):
        line = _one_line_error(CliRunner().invoke(app, [*cmd, "--device", "tpu"]))
        assert "--device" in line and "'tpu'" in line and "auto, cpu, cuda, cuda:N or mps" in line
    # numeric options: the same one-line error, naming option, value and what is allowed
    for cmd, shown in [(["evaluate", "--batch-size", "abc"], "'abc'"), (["evaluate", "--batch-size", "0"], "'0'"),
                       (["predict", "--top-k", "1.5", "-"], "'1.5'"), (["predict", "--top-k", "true", "-"], "'true'")]:
        line = _one_line_error(CliRunner().invoke(app, [*cmd, "--checkpoint", "x.pt"]))
        assert f"invalid {cmd[1]} = {shown}" in line and "expected an integer >= 1" in line, line


def test_real_command_and_dvc_stage_path(tmp_path: Path) -> None:
    """The console script as the DVC `train` stage calls it (`--params params.yaml`): stderr is one line."""
    exe = REPO / ".venv" / "bin" / "quickdraw"
    if not exe.exists():
        pytest.skip("no .venv/bin/quickdraw")
    f = tmp_path / "params.yaml"
    f.write_text("seed: 0\ntrain:\n  lr: .nan\n  epochs: 3\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([str(exe), "train", "--cache", "none", "--out", str(tmp_path / "m"), "--params", str(f),
                        "--live-dir", str(tmp_path / "live"), "--quiet"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr, p.stderr
    assert "train.lr = nan" in p.stderr and "finite number > 0" in p.stderr and str(f) in p.stderr
    assert not (tmp_path / "m").exists()  # nothing written before the params are known to be good


def test_good_values_are_normalised() -> None:
    p = load_params(None, ["lr=1e-3", "epochs=12.0", "warmup=0", "max_steps_per_epoch=null", "device=CPU"])
    assert p.lr == 0.001 and isinstance(p.lr, float) and p.epochs == 12 and isinstance(p.epochs, int)
    assert p.warmup == 0.0 and p.max_steps_per_epoch is None and p.device == "cpu"
    assert load_params(None) == TrainParams()
    with pytest.raises(ParamError, match=r"train\.lr = nan"):
        TrainParams(lr=math.nan).validate()
    assert issubclass(ParamError, QuickDrawError) and issubclass(ParamError, ValueError)


# ------------------------------------------------------------------------------------- the schedule


def test_schedule_unchanged_for_the_default_animals10_run() -> None:
    """5,000 drawings a class x 10 classes, 80% train: the plan of the run before these rules existed."""
    p = load_params(REPO / "params.yaml")
    s = plan_schedule(40_000, p)
    assert (s.batch_size, s.steps_per_epoch, s.epochs, s.patience, s.warmup_steps) == (256, 157, 12, 4, 300)
    assert (p.batch_size, p.epochs, p.patience, p.warmup_steps) == (256, 12, 4, 300)
    assert s.planned_steps >= p.min_steps  # so min_steps does not stretch it


def test_schedule_on_small_data_leaves_warmup() -> None:
    p = load_params(REPO / "params.yaml")
    s = plan_schedule(1214, p)  # the shared sample's 10 largest classes
    assert s.batch_size == 1214 // p.min_steps_per_epoch and s.steps_per_epoch >= p.min_steps_per_epoch
    assert 0 < s.warmup_steps <= math.ceil(p.warmup * s.planned_steps) < s.planned_steps
    # 41 steps an epoch: enough epochs for min_steps, patience stretched by the same factor
    assert (s.batch_size, s.steps_per_epoch, s.epochs, s.patience) == (30, 41, 37, 13)
    assert s.planned_steps >= p.min_steps
    assert plan_schedule(100, p).epochs == train_mod.MAX_EPOCH_STRETCH * p.epochs  # stretched at most 4x
    # an explicit max_steps_per_epoch, or min_steps 0, leaves epochs and patience as given
    assert plan_schedule(1214, TrainParams(epochs=3, max_steps_per_epoch=5)).epochs == 3
    assert (plan_schedule(1214, TrainParams(epochs=3, patience=2, min_steps=0)).epochs,
            plan_schedule(1214, TrainParams(epochs=3, patience=2, min_steps=0)).patience) == (3, 2)
    # tiny splits: the batch does not go below MIN_AUTO_BATCH, and an explicit smaller batch is kept
    assert plan_schedule(100, p).batch_size == train_mod.MIN_AUTO_BATCH
    assert plan_schedule(100, TrainParams(batch_size=4)).batch_size == 4
    # warm-up: a fraction of the planned steps, capped by warmup_steps; 0 disables it
    assert plan_schedule(10_000, TrainParams(batch_size=100, epochs=10, warmup=0.1, warmup_steps=1000,
                                             min_steps=0)).warmup_steps == 100
    assert plan_schedule(10_000, TrainParams(batch_size=100, epochs=10, warmup=0.1, warmup_steps=30)).warmup_steps == 30
    assert plan_schedule(10_000, TrainParams(warmup=0)).warmup_steps == 0
    # max_steps_per_epoch caps the steps the warm-up fraction is taken of
    s = plan_schedule(10_000, TrainParams(batch_size=10, epochs=2, max_steps_per_epoch=5, warmup=0.5))
    assert (s.steps_per_epoch, s.warmup_steps) == (5, 5)


@pytest.mark.parametrize("stage", ["train", "sketch"])
def test_params_files_that_would_mislead_are_refused_in_one_line(tmp_path: Path, stage: str) -> None:
    """Through both stages that read params.yaml: a key written twice (PyYAML kept the last one silently), a
    FIFO (it blocked the stage, then said "not found"), a missing file, a file far too large for params."""
    import os

    f = tmp_path / "params.yaml"
    f.write_text(f"seed: 0\n{stage}:\n  hidden: 64\n  layers: 1\n  hidden: 192\n")
    args = ["train", "--cache", "none"] if stage == "train" else ["sketch", "train", "--cache", "none", "--classes", "cat"]
    line = _one_line_error(CliRunner().invoke(app, [*args, "--params", str(f)]))
    assert "key 'hidden' appears twice (lines 3 and 5)" in line and str(f) in line, line
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    line = _one_line_error(CliRunner().invoke(app, [*args, "--params", str(fifo)]))
    assert "not a regular file" in line and str(fifo) in line, line
    line = _one_line_error(CliRunner().invoke(app, [*args, "--params", str(tmp_path / "nope.yaml")]))
    assert "params file not found" in line and "nope.yaml" in line, line
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    line = _one_line_error(CliRunner().invoke(app, [*args, "--params", str(big)]))
    assert "larger than" in line and str(big) in line, line


@pytest.mark.parametrize("key", ["epochs", "min_steps", "patience", "warmup_steps", "batch_size"])
def test_counts_beyond_any_run_are_refused(key: str) -> None:
    """A 20-digit epoch count was accepted (and planned a schedule no run could finish)."""
    line = _one_line_error(CliRunner().invoke(app, ["train", "--cache", "none", "--set",
                                                    f"train.{key}=99999999999999999999"]))
    assert f"train.{key}" in line and "<= " in line, line


_BOMB = "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i else '1'] * 9)}]\n" for i in range(10))


@pytest.mark.parametrize("stage", ["train", "sketch"])
@pytest.mark.parametrize("body,says", [
    (_BOMB + "{stage}: *a9\n", "expected a mapping of {stage} params"),
    (_BOMB + "{stage}:\n  hidden: *a9\n", "hidden"),
    (_BOMB + "{stage}:\n  enabled: *a9\n  classes: *a9\n", "{stage}"),
    ("{stage}: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_hostile_yaml_is_one_line_in_bounded_time(tmp_path: Path, stage: str, body: str, says: str) -> None:
    """A YAML alias bomb (1 KB that aliases to 10^9 elements) hung the error message, which printed the
    whole value; deep nesting raised RecursionError (found by review)."""
    f = tmp_path / "params.yaml"
    f.write_text(body.format(stage=stage))
    args = ["train", "--cache", "none"] if stage == "train" else ["sketch", "train", "--cache", "none", "--classes", "cat"]
    line = _one_line_error(CliRunner().invoke(app, [*args, "--params", str(f)]))
    assert says.format(stage=stage) in line and len(line) < 600, line


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    """`<<: *base` is plain YAML; the duplicate-key check refused it (a regression found by review)."""
    from quickdraw.pipeline.train import load_params

    f = tmp_path / "params.yaml"
    f.write_text("base: &b {hidden: 64, epochs: 2}\ntrain:\n  <<: *b\n  epochs: 3\n")
    p = load_params(f)
    assert (p.hidden, p.epochs) == (64, 3)
