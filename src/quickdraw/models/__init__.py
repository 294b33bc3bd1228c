"""The GRU doodle classifier (exact bidirectional GRU without packing) and its checkpoint format."""

from __future__ import annotations

from quickdraw.models.gru import ExactBiGRU, GRUClassifier, ModelConfig, PackedGRUClassifier, reverse_index

__all__ = ["ExactBiGRU", "GRUClassifier", "ModelConfig", "PackedGRUClassifier", "reverse_index"]
