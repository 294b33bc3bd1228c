"""Every `train.arch` variant ignores padding exactly: a padded batch (garbage in the padding) gives each
drawing the logits it gets alone, to 1e-5; all parameters learn; checkpoints round-trip; devices."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quickdraw.errors import CheckpointError
from quickdraw.models import ARCHS, GRUClassifier, ModelConfig, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VARIANTS = [(a, ln) for a in ARCHS for ln in (False, True)]


def _batch(seed: int, B: int = 6, T: int = 19, garbage: float = 1e4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([T, 1, 2, 7, T - 3, 11][:B])
    x = torch.randn(B, T, 3, generator=g, dtype=torch.float64) * 20
    x[..., 2] = (torch.rand(B, T, generator=g) < 0.2).double()
    pad = torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)
    x[pad] = garbage  # padding that would visibly change any output it reached
    return x, lengths


def _model(arch: str, layer_norm: bool, pool: str = "last+mean", layers: int = 2) -> GRUClassifier:
    torch.manual_seed(11)
    cfg = ModelConfig(n_classes=5, hidden=8, layers=layers, dropout=0.2, xy_scale=7.0, pool=pool, arch=arch,
                      layer_norm=layer_norm, conv_channels=6, conv_kernel=5)
    return GRUClassifier(cfg).double().eval()


@pytest.mark.parametrize("pool", ["last", "mean", "last+mean"])
@pytest.mark.parametrize(("arch", "layer_norm"), VARIANTS)
def test_padding_is_ignored_exactly(arch: str, layer_norm: bool, pool: str) -> None:
    model = _model(arch, layer_norm, pool)
    for garbage in (1e4, float("nan")):
        x, lengths = _batch(1, garbage=garbage)
        with torch.no_grad():
            batched = model(x, lengths)
            alone = torch.cat([model(x[i : i + 1, : int(lengths[i])], lengths[i : i + 1]) for i in range(len(x))])
        assert torch.isfinite(batched).all()
        assert torch.allclose(batched, alone, atol=1e-5, rtol=0), (arch, layer_norm, pool, garbage)


@pytest.mark.parametrize(("arch", "layer_norm"), VARIANTS)
def test_every_parameter_learns(arch: str, layer_norm: bool) -> None:
    """No parameter without a gradient: DDP (find_unused_parameters=False) needs that, and it shows the
    variant is really wired (a front end or LayerNorm left out of forward would have none)."""
    model = _model(arch, layer_norm).train()
    x, lengths = _batch(2, garbage=0.0)
    model(x, lengths).sum().backward()
    for name, prm in model.named_parameters():
        assert prm.grad is not None and prm.grad.abs().sum() > 0, name
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert ("front" in names) == (arch == "conv-bigru")
    assert any("norms" in n for n, _ in model.named_parameters()) == layer_norm


def test_variants_differ_in_size() -> None:
    counts = {a: sum(p.numel() for p in _model(a, False).parameters()) for a in ARCHS}
    assert counts["bilstm"] > counts["bigru"] > counts["gru"] and counts["lstm"] > counts["gru"]
    assert counts["bilstm"] > counts["lstm"] and counts["conv-bigru"] != counts["bigru"]


@pytest.mark.parametrize(("arch", "layer_norm"), VARIANTS)
def test_checkpoint_round_trip(arch: str, layer_norm: bool, tmp_path: Path) -> None:
    model = _model(arch, layer_norm).float()
    path = save_checkpoint(tmp_path / "m.pt", model, classes=list("abcde"))
    back, _ = load_checkpoint(path)
    assert back.config == model.config
    x, lengths = _batch(3, garbage=0.0)
    with torch.no_grad():
        assert torch.allclose(back(x.float(), lengths), model(x.float(), lengths), atol=1e-6)


def test_checkpoint_rejects_unknown_arch_and_even_kernel(tmp_path: Path) -> None:
    model = _model("bigru", False).float()
    doc = torch.load(save_checkpoint(tmp_path / "m.pt", model, classes=list("abcde")), weights_only=True)
    for key, value, msg in (("arch", "transformer", "arch='transformer' is not one of"),
                            ("conv_kernel", 4, "conv_kernel=4 is not odd"),
                            ("layer_norm", "yes", "layer_norm='yes' is not true or false")):
        bad = {**doc, "model_config": {**doc["model_config"], key: value}}
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=msg):
            load_checkpoint(tmp_path / "bad.pt")


def test_old_checkpoints_load_as_bigru(tmp_path: Path) -> None:
    model = _model("bigru", False).float()
    doc = torch.load(save_checkpoint(tmp_path / "m.pt", model, classes=list("abcde")), weights_only=True)
    old = {k: v for k, v in doc["model_config"].items() if k not in ("arch", "layer_norm", "conv_channels", "conv_kernel")}
    torch.save({**doc, "model_config": old}, tmp_path / "old.pt")
    back, _ = load_checkpoint(tmp_path / "old.pt")
    assert back.config.arch == "bigru" and not back.config.layer_norm


def _devices() -> list[str]:
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out or ["none"]


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize(("arch", "layer_norm"), VARIANTS)
def test_accelerators_match_cpu(arch: str, layer_norm: bool, device: str) -> None:
    """On CUDA and MPS (where present; skipped on this CPU-only machine) every variant matches the CPU."""
    if device == "none":
        pytest.skip("no CUDA or MPS device on this machine")
    model = _model(arch, layer_norm).float()
    x, lengths = _batch(4, garbage=0.0)
    with torch.no_grad():
        cpu = model(x.float(), lengths)
        acc = model.to(device)(x.float().to(device), lengths.to(device)).cpu()
    assert torch.allclose(cpu, acc, atol=1e-4)
