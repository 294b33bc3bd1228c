"""The doodle classifier (exact recurrent variants without packing: ``ARCHS``) and its checkpoint format."""

from __future__ import annotations

from quickdraw.models.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from quickdraw.models.gru import (
    ARCHS,
    ExactBiGRU,
    ExactBiRNN,
    ExactUniRNN,
    GRUClassifier,
    MaskedConv1d,
    ModelConfig,
    PackedGRUClassifier,
    reverse_index,
)

__all__ = [
    "ARCHS",
    "CHECKPOINT_FORMAT",
    "ExactBiGRU",
    "ExactBiRNN",
    "ExactUniRNN",
    "MaskedConv1d",
    "GRUClassifier",
    "ModelConfig",
    "PackedGRUClassifier",
    "load_checkpoint",
    "reverse_index",
    "save_checkpoint",
]
