"""The exact unpacked biGRU equals the packed reference, and padding never leaks into valid positions."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from quickdraw.models import (
    ExactBiGRU,
    GRUClassifier,
    ModelConfig,
    PackedGRUClassifier,
    reverse_index,
)

# Tiny models gain nothing from threads and the machine is shared (fixture in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(seed: int, B: int = 7, T: int = 23, C: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T  # at least one full-length row, so packed output has T steps
    x = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    return x, lengths


def test_reverse_index_is_within_length_involution() -> None:
    idx = reverse_index(torch.tensor([3, 1, 5]), 5)
    assert idx.tolist() == [[2, 1, 0, 3, 4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]
    assert torch.equal(idx.gather(1, idx), torch.arange(5).expand(3, 5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_bigru_equals_packed_reference(seed: int) -> None:
    torch.manual_seed(seed)
    x, lengths = _batch(seed)
    gru = torch.nn.GRU(3, 16, num_layers=2, bidirectional=True, batch_first=True).double().eval()
    exact = ExactBiGRU(3, 16, layers=2).double().eval()
    exact.load_packed_state(gru)

    out, last_fwd, first_bwd = exact(x, lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_p, h_n = gru(packed)
    ref, _ = pad_packed_sequence(ref_p, batch_first=True)

    mask = torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    assert torch.allclose(out[mask], ref[mask], atol=1e-5, rtol=0)
    assert torch.allclose(last_fwd, h_n[-2], atol=1e-5, rtol=0)
    assert torch.allclose(first_bwd, h_n[-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pool", ["last", "mean", "last+mean"])
def test_classifier_matches_packed_classifier_float32(pool: str) -> None:
    torch.manual_seed(3)
    x, lengths = _batch(3, B=9, T=31)
    x = (x * 20).round().float()  # stroke-3 like magnitudes; the model scales them
    model = GRUClassifier(ModelConfig(n_classes=5, hidden=24, xy_scale=17.0, pool=pool)).eval()
    ref = PackedGRUClassifier.from_exact(model).eval()
    assert torch.allclose(model(x, lengths), ref(x, lengths), atol=1e-5, rtol=0)
    # and the weights also round-trip the other way
    back = ExactBiGRU(3, 24, 2)
    back.load_packed_state(ref.rnn)
    for a, b in zip(back.state_dict().values(), model.rnn.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_padding_content_never_changes_logits() -> None:
    torch.manual_seed(4)
    x, lengths = _batch(4, B=6, T=20)
    x = x.float()
    model = GRUClassifier(ModelConfig(n_classes=4, hidden=12, pool="last+mean")).eval()
    base = model(x, lengths)
    mask = torch.arange(20).unsqueeze(0) >= lengths.unsqueeze(1)
    noisy = x.clone()
    noisy[mask] = 1e4 * torch.randn(int(mask.sum()), 3)
    # extra padding at the end must not matter either
    longer = torch.cat([noisy, torch.randn(6, 9, 3)], dim=1)
    assert torch.allclose(model(noisy, lengths), base, atol=1e-6)
    assert torch.allclose(model(longer, lengths), base, atol=1e-6)
    # each row alone equals the row in the batch
    for i in range(6):
        L = int(lengths[i])
        alone = model(x[i : i + 1, :L], lengths[i : i + 1])
        assert torch.allclose(alone, base[i : i + 1], atol=1e-5)


def test_gradients_flow_only_to_valid_positions() -> None:
    torch.manual_seed(5)
    x, lengths = _batch(5, B=4, T=12)
    x = x.float().requires_grad_(True)
    model = GRUClassifier(ModelConfig(n_classes=3, hidden=8)).train()
    model(x, lengths).sum().backward()
    mask = torch.arange(12).unsqueeze(0) >= lengths.unsqueeze(1)
    assert torch.all(x.grad[mask] == 0)
    assert x.grad[~mask].abs().sum() > 0


def test_config_round_trip_and_bad_pool() -> None:
    cfg = ModelConfig(n_classes=10, hidden=64, xy_scale=12.5)
    assert ModelConfig.from_dict(cfg.to_dict() | {"unknown": 1}) == cfg
    with pytest.raises(ValueError, match="pool"):
        GRUClassifier(ModelConfig(n_classes=2, pool="max"))


def test_public_methods_have_docstrings() -> None:
    # Own __doc__ only: inspect.getdoc would inherit nn.Module.forward's and hide a missing one.
    for cls in (ModelConfig, ExactBiGRU, GRUClassifier, PackedGRUClassifier):
        for name, attr in vars(cls).items():
            fn = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
            if (name.startswith("_") and name != "forward") or not inspect.isfunction(fn):
                continue
            assert fn.__doc__, f"{cls.__name__}.{name}"
