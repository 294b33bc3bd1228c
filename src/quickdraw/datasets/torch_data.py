"""PyTorch glue: a ``Dataset`` over a cached split, padded collation and a length-bucketing sampler.

Workers never receive array copies: pickling a :class:`SequenceDataset` sends only its path, and each
worker memory-maps the same files (with fork the parent's mappings are simply shared).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from quickdraw.datasets._padding import pad, to_torch

__all__ = ["BucketBatchSampler", "IndexedSequences", "TorchSequenceDataset", "collate_padded", "shard_batch"]


class IndexedSequences(Protocol):
    """What :class:`TorchSequenceDataset` wraps: a :class:`~quickdraw.datasets.SequenceDataset` or a stand-in.

    A protocol rather than the class itself, so this module does not import ``sequence`` (which imports this
    one for ``SequenceDataset.torch()``).
    """

    @property
    def lengths(self) -> np.ndarray: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> tuple[np.ndarray, int]: ...


class TorchSequenceDataset(Dataset):  # type: ignore[type-arg]
    """A ``torch.utils.data.Dataset`` view of a :class:`SequenceDataset`.

    Items are ``(np.ndarray [L, C], int label)`` (int16 views, or float32 when normalised); pair it with
    :func:`collate_padded`. ``__getitems__`` lets a DataLoader with a batch sampler fetch a whole batch in
    one call, which :func:`collate_padded` then pads with a single fill.
    """

    def __init__(self, seqs: IndexedSequences) -> None:
        self.seqs = seqs

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.seqs[i]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[np.ndarray, int]]:
        s = self.seqs
        return [s[i] for i in indices]

    @property
    def lengths(self) -> np.ndarray:
        """Steps per sequence (for :class:`BucketBatchSampler`)."""
        return self.seqs.lengths


def collate_padded(batch: Sequence[tuple[Any, int]]) -> dict[str, torch.Tensor]:
    """Pad ``[(seq [L, C], label), ...]`` into ``x`` float32 [B, T, C], ``lengths`` int64 [B], ``mask`` bool
    [B, T] and ``labels`` int64 [B].

    One concatenate and one masked numpy fill, no per-item torch ops. With 5 channels the padding rows are
    stroke-5 end steps ``(0, 0, 0, 0, 1)``; ``lengths`` suits ``pack_padded_sequence``.
    """
    if not batch:
        raise ValueError("collate_padded: empty batch")
    seqs = [s.numpy() if isinstance(s, torch.Tensor) else np.asarray(s) for s, _ in batch]
    channels = seqs[0].shape[1]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = np.concatenate(seqs, axis=0)
    out = pad(flat, lengths, channels)
    out["labels"] = np.fromiter((int(lab) for _, lab in batch), dtype=np.int64, count=len(batch))
    return to_torch(out)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar lengths: shuffle, cut into buckets, sort each bucket by length, batch, shuffle
    the batch order.

    Guarantees: every index appears exactly once per epoch (the last short batch is dropped only with
    ``drop_last``); the same ``seed`` and epoch (:meth:`set_epoch`) give the same batches; each batch is a
    run of consecutive lengths in its sorted bucket, so padding is bounded by the spread of
    ``batch_size`` neighbouring lengths out of ``bucket_size`` random ones. ``bucket_size`` (default
    ``50 * batch_size``) is rounded up to a multiple of ``batch_size`` so only the final batch can be short.
    ``shuffle=False`` sorts the whole dataset by length (evaluation, minimal padding).

    Distributed (``num_replicas`` > 1, e.g. under torchrun): every rank builds the same global batches
    from the same seed and epoch and takes its own contiguous share of each (:func:`shard_batch`), so per
    epoch the ranks see disjoint sets of batches of similar lengths, together every index exactly once,
    and all ranks the same number of batches (a share may be empty when a global batch has fewer items
    than ranks; a DDP step must still run on every rank). ``batch_size`` stays the *global* batch.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        bucket_size: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas}, {rank}")
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        b = bucket_size or 50 * self.batch_size
        self.bucket_size = int(math.ceil(b / self.batch_size) * self.batch_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation (call before iterating, as with ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self) -> list[np.ndarray]:
        """This epoch's batches for this rank as index arrays (all of them in a single process)."""
        return [shard_batch(b, self.num_replicas, self.rank) for b in self.global_batches()]

    def global_batches(self) -> list[np.ndarray]:
        """This epoch's global batches (the same on every rank) as index arrays."""
        n = len(self.lengths)
        bs = self.batch_size
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            out = [order[i : i + bs] for i in range(0, n, bs)]
        else:
            rng = np.random.default_rng([self.seed, self.epoch])
            perm = rng.permutation(n)
            out = []
            for lo in range(0, n, self.bucket_size):
                bucket = perm[lo : lo + self.bucket_size]
                bucket = bucket[np.argsort(self.lengths[bucket], kind="stable")]
                out.extend(bucket[i : i + bs] for i in range(0, len(bucket), bs))
            order_ = rng.permutation(len(out))
            out = [out[j] for j in order_]
        if self.drop_last:
            out = [b for b in out if len(b) == bs]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.batches():
            yield b.tolist()


def shard_batch(batch: np.ndarray, num_replicas: int, rank: int) -> np.ndarray:
    """Rank ``rank``'s contiguous share of one global batch (sizes differ by at most one, larger first).

    Contiguous rather than strided: a bucketed batch is sorted by length, so each share keeps the
    narrowest length range, i.e. the least padding on its rank. The shares partition the batch.
    """
    if num_replicas == 1:
        return batch
    n = len(batch)
    base, extra = divmod(n, num_replicas)
    lo = rank * base + min(rank, extra)
    return batch[lo : lo + base + (1 if rank < extra else 0)]
