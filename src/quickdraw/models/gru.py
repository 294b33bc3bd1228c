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

__all__ = ["ExactBiGRU", "GRUClassifier", "ModelConfig", "PackedGRUClassifier", "reverse_index"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a classifier; stored verbatim in checkpoints.

    ``xy_scale`` divides the ``dx, dy`` columns (pen_lift is left as 0/1); the trainer sets it to the
    standard deviation of ``dx, dy`` over the training split so the GRU sees roughly unit-variance input.
    ``pool`` selects the head input: ``"last"`` = [forward state at the last valid step, backward state at
    step 0]; ``"mean"`` = masked mean of top-layer outputs; ``"last+mean"`` = both concatenated.
    """

    n_classes: int
    input_size: int = 3
    hidden: int = 192
    layers: int = 2
    dropout: float = 0.3
    xy_scale: float = 1.0
    pool: str = "last"

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


class ExactBiGRU(nn.Module):
    """A multi-layer bidirectional GRU over a padded batch (batch-first) that ignores padding exactly.

    ``forward(x [B, T, C], lengths [B])`` returns ``(outputs [B, T, 2H], last_fwd [B, H], first_bwd [B, H])``
    where ``outputs`` equal a packed ``nn.GRU(bidirectional=True)``'s at valid positions (padding rows of
    ``outputs`` are unspecified), ``last_fwd`` is the top layer's forward state after step ``L-1`` and
    ``first_bwd`` the top layer's backward state after reading back to step 0.
    """

    def __init__(self, input_size: int, hidden: int, layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.input_size, self.hidden, self.layers = input_size, hidden, layers
        self.fwd = nn.ModuleList()
        self.bwd = nn.ModuleList()
        for i in range(layers):
            size = input_size if i == 0 else 2 * hidden
            self.fwd.append(nn.GRU(size, hidden, batch_first=True))
            self.bwd.append(nn.GRU(size, hidden, batch_first=True))
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
                h = self.drop(h)
            out_f, _ = self.fwd[i](h)
            out_b_rev, _ = self.bwd[i](_gather_time(h, rev))
            out_b = _gather_time(out_b_rev, rev)
            h = torch.cat([out_f, out_b], dim=-1)
        last_fwd = out_f.gather(1, last).squeeze(1)
        first_bwd = out_b[:, 0, :]
        return h, last_fwd, first_bwd

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
        self.config = config
        head_in = 2 * config.hidden * (2 if config.pool == "last+mean" else 1)
        self.head_drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(head_in, config.n_classes)
        # A buffer (not a parameter) so the scale moves with .to(device) and lands in state_dict too.
        scale = torch.ones(config.input_size)
        scale[:2] = float(config.xy_scale)
        self.register_buffer("input_scale", scale, persistent=False)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.input_scale.to(x.dtype)

    def _pool(self, out: torch.Tensor, last_fwd: torch.Tensor, first_bwd: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        parts = []
        if "last" in self.config.pool:
            parts.append(torch.cat([last_fwd, first_bwd], dim=-1))
        if "mean" in self.config.pool:
            parts.append(_masked_mean(out, lengths))
        return self.head(self.head_drop(torch.cat(parts, dim=-1)))


class GRUClassifier(_ClassifierBase):
    """The production classifier: ``ExactBiGRU`` + linear head. ``forward(x, lengths) -> logits [B, K]``.

    ``x`` is float ``[B, T, 3]`` raw stroke-3 (scaling happens inside), ``lengths`` int ``[B]`` (>= 1).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.rnn = ExactBiGRU(config.input_size, config.hidden, config.layers, config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]`` for raw stroke-3 ``x [B, T, 3]`` with valid ``lengths [B]``."""
        # Trimming to the longest sequence keeps a collate that pads to a fixed size from costing time.
        T = int(lengths.max())
        x = self._scale(x[:, :T])
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
