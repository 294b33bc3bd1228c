"""The GRU doodle classifier (exact bidirectional GRU without packing) and its checkpoint format."""

from __future__ import annotations

from quickdraw.models.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from quickdraw.models.gru import ExactBiGRU, GRUClassifier, ModelConfig, PackedGRUClassifier, reverse_index

__all__ = [
    "CHECKPOINT_FORMAT",
    "ExactBiGRU",
    "GRUClassifier",
    "ModelConfig",
    "PackedGRUClassifier",
    "load_checkpoint",
    "reverse_index",
    "save_checkpoint",
]
