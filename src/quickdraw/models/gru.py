"""A bidirectional GRU doodle classifier over stroke-3 sequences, exact without packing.

Why not ``pack_padded_sequence``: measured with torch 2.13 on this project's 2-core CPU (2 layers, hidden
192, 64 sequences, one thread, ``model(x, lengths).sum().backward()`` on identical batches, best of 3,
``PackedGRUClassifier`` vs this model): about equal on short batches (32 steps: 0.16 vs 0.22 s; 64 steps: 0.41 vs 0.29 s), but
the packed GRU's backward pass grows much faster than linearly with the batch's length while this model's
grows linearly: 128 steps 1.7 vs 1.0 s, 192 steps 5.5 vs 1.5 s, 256 steps 18.7 vs 2.1 s (forward alone is
alike: 0.76 vs 0.68 s at 256 steps). Drawings run up to ``max_len`` (250) steps. The model also gives the
packed GRU's outputs (tests/unit/test_model.py compares them), needs no sort, pack or unpack step, and keeps
``lengths`` on any device (``pack_padded_sequence`` wants them on the CPU). It computes on the padding of
each batch and discards it, so it relies on length-bucketed batches (``BucketBatchSampler``: 6% padding
instead of 77%), which is where most of the training speed-up over random padded batches comes from.
It runs each direction as a plain ``nn.GRU`` over the padded batch and stays exact by construction:

* forward direction: a GRU is causal, so the output at a sequence's last valid step ``L-1`` never sees the
  padding after it; the classifier reads that step, not the last padded one.
* backward direction: each sequence is reversed *within its own length* (``t -> L-1-t`` for ``t < L``;
  padding positions stay where they are) with one gather, run through a forward ``nn.GRU`` and un-reversed
  with the same gather (the index map is an involution). The backward pass therefore starts at the
  sequence's own end and padding, sitting after the reversed valid part, never reaches a valid position.
* a 2-layer biGRU feeds layer 2 with both directions of layer 1, so the model is built layer by layer.
  Values at padding positions are garbage but, by the two points above, never influence valid positions.

Variants (``ModelConfig.arch``, issue 16), all exact the same way and tested against a per-sequence
reference (tests/unit/test_arch.py): ``bigru`` (the above, the default), ``bilstm`` (the same construction
with LSTM cells), ``gru`` and ``lstm`` (unidirectional: causal, read at step ``L-1``), ``conv-bigru`` (a
1-D convolution over the steps in front of the biGRU; the padding is zeroed first, so a step near a
sequence's end sees zeros beyond it, exactly as the sequence alone with 'same' zero padding would).
``layer_norm`` puts a LayerNorm on each layer's output before the next layer (per step, so padding cannot
leak through it; a no-op with one layer).

``ExactBiGRU.load_packed_state`` / ``packed_reference`` copy weights to and from a stock
``nn.GRU(bidirectional=True)`` so tests can prove equality with the packed reference.

Input scaling: the model takes raw stroke-3 rows ``(dx, dy, pen_lift)`` as floats (exactly what
``collate_padded`` yields) and divides ``dx, dy`` by ``ModelConfig.xy_scale`` itself (pen_lift stays 0/1).
The scale lives in the config, and so in every checkpoint, so prediction feeds raw stroke-3 with no
separate preprocessing step to keep in sync.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["ARCHS", "ExactBiGRU", "ExactBiRNN", "ExactUniRNN", "GRUClassifier", "MaskedConv1d", "ModelConfig",
           "PackedGRUClassifier", "reverse_index"]

#: The architectures ``ModelConfig.arch`` (and ``train.arch``) accepts.
ARCHS = ("bigru", "gru", "lstm", "bilstm", "conv-bigru")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a classifier; stored verbatim in checkpoints.

    ``xy_scale`` divides the ``dx, dy`` columns (pen_lift is left as 0/1); the trainer sets it to the
    standard deviation of ``dx, dy`` over the training split so the GRU sees roughly unit-variance input.
    ``pool`` selects the head input: ``"last"`` = [forward state at the last valid step, backward state at
    step 0] (unidirectional archs: the state at the last valid step); ``"mean"`` = masked mean of top-layer
    outputs; ``"last+mean"`` = both concatenated. ``arch`` is one of :data:`ARCHS`; ``layer_norm`` adds a
    LayerNorm between recurrent layers; ``conv_channels``/``conv_kernel`` (odd) size the ``conv-bigru``
    front end. Checkpoints written before these fields existed load as ``bigru`` without LayerNorm.
    """

    n_classes: int
    input_size: int = 3
    hidden: int = 192
    layers: int = 2
    dropout: float = 0.3
    xy_scale: float = 1.0
    #: stroke3t models (input_size 4: dx, dy, dt, pen_lift): what the dt column (ms) is divided by.
    dt_scale: float = 1.0
    pool: str = "last"
    arch: str = "bigru"
    layer_norm: bool = False
    conv_channels: int = 64
    conv_kernel: int = 5

    @property
    def bidirectional(self) -> bool:
        """Whether the recurrent part reads both directions (its outputs are ``2 * hidden`` wide)."""
        return self.arch in ("bigru", "bilstm", "conv-bigru")

    @property
    def cell(self) -> str:
        """``"gru"`` or ``"lstm"``."""
        return "lstm" if "lstm" in self.arch else "gru"

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (the checkpoint's ``model_config``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output, ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def reverse_index(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """Index ``[B, T]`` mapping step ``t`` to ``L-1-t`` inside each sequence and to itself in the padding.

    Gathering with it reverses every sequence within its own length; applying it twice is the identity.
    """
    t = torch.arange(total, device=lengths.device).unsqueeze(0)
    L = lengths.to(t.device).unsqueeze(1)
    return torch.where(t < L, L - 1 - t, t)


def _gather_time(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


_CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}


def _norms(layers: int, width: int, on: bool) -> nn.ModuleList:
    # One LayerNorm per gap between layers; an empty list (no parameters) when off, so old state dicts load.
    return nn.ModuleList([nn.LayerNorm(width) for _ in range(layers - 1)] if on else [])


class ExactBiRNN(nn.Module):
    """A multi-layer bidirectional GRU or LSTM (``cell``) over a padded batch that ignores padding exactly.

    ``forward(x [B, T, C], lengths [B])`` returns ``(outputs [B, T, 2H], last_fwd [B, H], first_bwd [B, H])``
    where ``outputs`` equal a packed ``nn.GRU(bidirectional=True)``'s at valid positions (padding rows of
    ``outputs`` are unspecified), ``last_fwd`` is the top layer's forward state after step ``L-1`` and
    ``first_bwd`` the top layer's backward state after reading back to step 0.
    """

    def __init__(self, input_size: int, hidden: int, layers: int = 2, dropout: float = 0.0, *, cell: str = "gru",
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.input_size, self.hidden, self.layers = input_size, hidden, layers
        rnn = _CELLS[cell]
        self.fwd = nn.ModuleList()
        self.bwd = nn.ModuleList()
        for i in range(layers):
            size = input_size if i == 0 else 2 * hidden
            self.fwd.append(rnn(size, hidden, batch_first=True))
            self.bwd.append(rnn(size, hidden, batch_first=True))
        self.norms = _norms(layers, 2 * hidden, layer_norm)
        # Same semantics as nn.GRU(dropout=...): between layers, not after the last one.
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(outputs [B, T, 2H], last_fwd [B, H], first_bwd [B, H])`` for padded ``x`` and its ``lengths``."""
        B, T, _ = x.shape
        lengths = lengths.to(x.device)
        rev = reverse_index(lengths, T)
        last = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, self.hidden)
        h = x
        for i in range(self.layers):
            if i > 0:
                if len(self.norms):
                    h = self.norms[i - 1](h)
                h = self.drop(h)
            out_f, _ = self.fwd[i](h)
            out_b_rev, _ = self.bwd[i](_gather_time(h, rev))
            out_b = _gather_time(out_b_rev, rev)
            h = torch.cat([out_f, out_b], dim=-1)
        last_fwd = out_f.gather(1, last).squeeze(1)
        first_bwd = out_b[:, 0, :]
        return h, last_fwd, first_bwd



class ExactBiGRU(ExactBiRNN):
    """:class:`ExactBiRNN` with GRU cells (the default model's recurrent part), plus weight exchange with
    a stock ``nn.GRU(bidirectional=True)`` for tests and benchmarks."""

    def __init__(self, input_size: int, hidden: int, layers: int = 2, dropout: float = 0.0, *,
                 layer_norm: bool = False) -> None:
        super().__init__(input_size, hidden, layers, dropout, cell="gru", layer_norm=layer_norm)

    # -- weight exchange with the stock packed implementation (tests and benchmarks) --------------------

    def load_packed_state(self, gru: nn.GRU) -> None:
        """Copy weights from a stock ``nn.GRU(bidirectional=True, batch_first=True)`` of the same shape."""
        if not (gru.bidirectional and gru.num_layers == self.layers and gru.hidden_size == self.hidden):
            raise ValueError("nn.GRU shape does not match ExactBiGRU")
        with torch.no_grad():
            for i in range(self.layers):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.fwd[i], f"{name}_l0").copy_(getattr(gru, f"{name}_l{i}"))
                    getattr(self.bwd[i], f"{name}_l0").copy_(getattr(gru, f"{name}_l{i}_reverse"))

    def packed_reference(self) -> nn.GRU:
        """A stock bidirectional ``nn.GRU`` holding this module's weights (dropout copied, mode not)."""
        gru = nn.GRU(
            self.input_size, self.hidden, num_layers=self.layers, bidirectional=True,
            batch_first=True, dropout=self.drop.p if self.layers > 1 else 0.0,
        )
        with torch.no_grad():
            for i in range(self.layers):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(gru, f"{name}_l{i}").copy_(getattr(self.fwd[i], f"{name}_l0"))
                    getattr(gru, f"{name}_l{i}_reverse").copy_(getattr(self.bwd[i], f"{name}_l0"))
        return gru.to(next(self.parameters()).device)


class ExactUniRNN(nn.Module):
    """A multi-layer unidirectional GRU or LSTM over a padded batch; exact because it is causal.

    ``forward(x, lengths)`` returns ``(outputs [B, T, H], last [B, H], None)``: ``last`` is the top layer's
    output at step ``L-1`` (padding after it is never read). Built layer by layer for the LayerNorm switch.
    """

    def __init__(self, input_size: int, hidden: int, layers: int = 2, dropout: float = 0.0, *, cell: str = "gru",
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.hidden, self.layers = hidden, layers
        rnn = _CELLS[cell]
        self.fwd = nn.ModuleList([rnn(input_size if i == 0 else hidden, hidden, batch_first=True)
                                  for i in range(layers)])
        self.norms = _norms(layers, hidden, layer_norm)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        """``(outputs [B, T, H], state at step L-1 [B, H], None)``."""
        B = x.shape[0]
        lengths = lengths.to(x.device)
        h = x
        for i in range(self.layers):
            if i > 0:
                if len(self.norms):
                    h = self.norms[i - 1](h)
                h = self.drop(h)
            h, _ = self.fwd[i](h)
        last = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, self.hidden)
        return h, h.gather(1, last).squeeze(1), None


class MaskedConv1d(nn.Module):
    """A 1-D convolution over the steps (``'same'`` length, odd kernel) + ReLU that never sees padding.

    Padding rows are zeroed before the convolution, so a sequence in a batch gets exactly what it gets alone
    with zero padding at its borders; output rows at padding positions are zeroed too.
    """

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 5) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd and >= 1, got {kernel}")
        self.conv = nn.Conv1d(channels_in, channels_out, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, T, C_in] -> [B, T, C_out]`` in ``x``'s dtype, whatever autocast made of the convolution."""
        mask = (torch.arange(x.shape[1], device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1)).unsqueeze(-1)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        y = self.conv(torch.where(mask, x, zero).transpose(1, 2)).transpose(1, 2)
        # Back to the input's dtype: under bf16 autocast the conv runs in bf16, the recurrent cells take fp32.
        y = torch.relu(y).to(x.dtype)
        return torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))


def _masked_mean(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    mask = torch.arange(h.shape[1], device=h.device).unsqueeze(0) < lengths.to(h.device).unsqueeze(1)
    # where() rather than multiply: padding rows may hold anything, including non-finite values.
    summed = torch.where(mask.unsqueeze(-1), h, torch.zeros((), dtype=h.dtype, device=h.device)).sum(1)
    return summed / lengths.to(h.device).clamp(min=1).unsqueeze(1).to(h.dtype)


class _ClassifierBase(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.pool not in ("last", "mean", "last+mean"):
            raise ValueError(f"unknown pool {config.pool!r}; expected last, mean or last+mean")
        if config.arch not in ARCHS:
            raise ValueError(f"unknown arch {config.arch!r}; expected one of {', '.join(ARCHS)}")
        self.config = config
        width = (2 if config.bidirectional else 1) * config.hidden
        head_in = width * (2 if config.pool == "last+mean" else 1)
        self.head_drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(head_in, config.n_classes)
        # A buffer (not a parameter) so the scale moves with .to(device) and lands in state_dict too.
        scale = torch.ones(config.input_size)
        scale[:2] = float(config.xy_scale)
        if config.input_size == 4:  # stroke3t: (dx, dy, dt, pen_lift), the pen column stays 0/1
            scale[2] = float(config.dt_scale)
        self.register_buffer("input_scale", scale, persistent=False)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.input_scale.to(x.dtype)

    def _pool(self, out: torch.Tensor, last_fwd: torch.Tensor, first_bwd: torch.Tensor | None,
              lengths: torch.Tensor) -> torch.Tensor:
        parts = []
        if "last" in self.config.pool:
            parts.append(last_fwd if first_bwd is None else torch.cat([last_fwd, first_bwd], dim=-1))
        if "mean" in self.config.pool:
            parts.append(_masked_mean(out, lengths))
        return self.head(self.head_drop(torch.cat(parts, dim=-1)))


class GRUClassifier(_ClassifierBase):
    """The production classifier, any :data:`ARCHS` variant (default ``ExactBiGRU``) + linear head.

    ``forward(x, lengths) -> logits [B, K]``; ``x`` is float ``[B, T, 3]`` raw stroke-3 (scaling happens
    inside), ``lengths`` int ``[B]`` (>= 1). The name stays for every arch: checkpoints, ``evaluate`` and
    ``predict`` use it whatever the recurrent part is.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        c = config
        self.front: MaskedConv1d | None = None
        size = c.input_size
        if c.arch == "conv-bigru":
            self.front = MaskedConv1d(c.input_size, c.conv_channels, c.conv_kernel)
            size = c.conv_channels
        self.rnn: nn.Module
        if c.bidirectional:
            self.rnn = (ExactBiGRU(size, c.hidden, c.layers, c.dropout, layer_norm=c.layer_norm) if c.cell == "gru"
                        else ExactBiRNN(size, c.hidden, c.layers, c.dropout, cell=c.cell, layer_norm=c.layer_norm))
        else:
            self.rnn = ExactUniRNN(size, c.hidden, c.layers, c.dropout, cell=c.cell, layer_norm=c.layer_norm)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]`` for raw stroke-3 ``x [B, T, 3]`` with valid ``lengths [B]``."""
        # Trimming to the longest sequence keeps a collate that pads to a fixed size from costing time.
        T = int(lengths.max())
        x = self._scale(x[:, :T])
        if self.front is not None:
            x = self.front(x, lengths)
        out, last_fwd, first_bwd = self.rnn(x, lengths)
        return self._pool(out, last_fwd, first_bwd, lengths)


class PackedGRUClassifier(_ClassifierBase):
    """The stock ``pack_padded_sequence`` version of ``GRUClassifier``: the benchmark baseline and the
    reference the tests compare against. Same config, same head, weights exchangeable via ``from_exact``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.rnn = nn.GRU(
            config.input_size, config.hidden, num_layers=config.layers, bidirectional=True,
            batch_first=True, dropout=config.dropout if config.layers > 1 else 0.0,
        )

    @classmethod
    def from_exact(cls, model: GRUClassifier) -> PackedGRUClassifier:
        """A packed classifier holding ``model``'s weights (same config, device and head)."""
        ref = cls(model.config)
        ref.rnn = model.rnn.packed_reference()
        ref.head.load_state_dict(model.head.state_dict())
        return ref.to(next(model.parameters()).device)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]`` via ``pack_padded_sequence`` (the reference for :class:`GRUClassifier`)."""
        x = self._scale(x)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out_p, h_n = self.rnn(packed)
        out, _ = pad_packed_sequence(out_p, batch_first=True)
        # h_n is [layers * 2, B, H]: the last two rows are the top layer's forward and backward finals.
        return self._pool(out, h_n[-2], h_n[-1], lengths)
