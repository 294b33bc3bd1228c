"""PyTorch helpers: collate_padded, BucketBatchSampler guarantees, DataLoader with workers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset, Sampler

import quickdraw as qd
from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.datasets import BucketBatchSampler, SequenceDataset, TorchSequenceDataset, collate_padded


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> SequenceDataset:
    base = tmp_path_factory.mktemp("torch")
    strokes = write_synthetic_strokes(base / "strokes", ("cat", "dog", "apple"), 60, seed=21)
    build_cache(strokes, base / "cache", "animals")
    return qd.load("animals", root=base / "cache")


def test_collate_padded_shapes_and_padding(ds: SequenceDataset) -> None:
    items = [ds[i] for i in (3, 0, 9)]
    b = collate_padded(items)
    lens = [len(s) for s, _ in items]
    assert b["x"].dtype == torch.float32 and tuple(b["x"].shape) == (3, max(lens), 3)
    assert b["lengths"].dtype == torch.int64 and b["lengths"].tolist() == lens
    assert b["mask"].dtype == torch.bool and b["mask"].sum(1).tolist() == lens
    assert b["labels"].dtype == torch.int64 and b["labels"].tolist() == [lab for _, lab in items]
    for r, (s, _) in enumerate(items):
        assert torch.equal(b["x"][r, : len(s)], torch.from_numpy(s.astype(np.float32)))
    np.testing.assert_array_equal(b["x"].numpy(), ds.batch([3, 0, 9])["x"].numpy())
    five = collate_padded([(np.array([[1, 2, 1, 0, 0], [0, 0, 0, 0, 1]], np.int16), 1), (np.zeros((4, 5), np.int16), 0)])
    assert five["x"][0, 2:].tolist() == [[0, 0, 0, 0, 1]] * 2
    tensors = collate_padded([(torch.ones(2, 3), 0), (torch.ones(1, 3), 1)])
    assert tensors["x"].shape == (2, 2, 3)


def _check_epoch(batches: list[list[int]], n: int, bs: int, drop_last: bool) -> None:
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    if drop_last:
        assert all(len(b) == bs for b in batches) and len(flat) == n // bs * bs
    else:
        assert sorted(flat) == list(range(n)) and sum(len(b) < bs for b in batches) <= 1


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), min_size=0, max_size=400),
    bs=st.integers(1, 40),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    bucket=st.none() | st.integers(1, 200),
    seed=st.integers(0, 5),
)
def test_sampler_every_index_once(
    lengths: list[int], bs: int, drop_last: bool, shuffle: bool, bucket: int | None, seed: int
) -> None:
    s = BucketBatchSampler(lengths, bs, shuffle=shuffle, seed=seed, drop_last=drop_last, bucket_size=bucket)
    for epoch in (0, 1):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        _check_epoch(batches, len(lengths), bs, drop_last)


def test_sampler_deterministic_per_seed_and_epoch() -> None:
    lengths = np.random.default_rng(0).integers(5, 250, 5000)
    a, b = BucketBatchSampler(lengths, 64, seed=3), BucketBatchSampler(lengths, 64, seed=3)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(BucketBatchSampler(lengths, 64, seed=4)) != list(BucketBatchSampler(lengths, 64, seed=3))
    assert isinstance(a, Sampler)


def test_sampler_bounds_padding() -> None:
    rng = np.random.default_rng(1)
    lengths = np.clip(rng.gamma(3.0, 18.0, 20_000).astype(int), 6, 250)
    bs = 128
    s = BucketBatchSampler(lengths, bs, seed=0)

    def pad_fraction(batches: list[np.ndarray]) -> float:
        padded = sum(len(b) * lengths[b].max() for b in batches)
        return 1 - lengths.sum() / padded

    bucketed = s.batches()
    random = np.array_split(rng.permutation(len(lengths)), -(-len(lengths) // bs))
    assert pad_fraction(bucketed) < 0.1 < 0.4 < pad_fraction(random)
    # Each batch is a run of neighbours in its sorted bucket: its spread is far below the global spread.
    spreads = [lengths[b].max() - lengths[b].min() for b in bucketed]
    assert np.median(spreads) <= 10
    # No shuffle: globally sorted, so the spread within a batch is minimal.
    sorted_batches = BucketBatchSampler(lengths, bs, shuffle=False).batches()
    flat = np.concatenate(sorted_batches)
    assert (np.diff(lengths[flat]) >= 0).all()


def test_dataloader_with_workers(ds: SequenceDataset) -> None:
    tds = ds.torch()
    assert isinstance(tds, Dataset) and isinstance(tds, TorchSequenceDataset) and len(tds) == len(ds)
    sampler = BucketBatchSampler(tds.lengths, 16, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pin_memory without an accelerator only warns
        loader = DataLoader(tds, batch_sampler=sampler, collate_fn=collate_padded, num_workers=2, pin_memory=True)
        batches = list(loader)
    assert len(batches) == len(sampler)
    got_lengths = np.sort(np.concatenate([b["lengths"].numpy() for b in batches]))
    np.testing.assert_array_equal(got_lengths, np.sort(ds.lengths))
    got = sorted(zip(np.concatenate([b["lengths"].numpy() for b in batches]).tolist(),
                     np.concatenate([b["labels"].numpy() for b in batches]).tolist()))
    assert got == sorted(zip(ds.lengths.tolist(), ds.labels.tolist()))
    expected = [ds.batch(b)["x"] for b in sampler]
    assert all(torch.equal(x["x"], e) for x, e in zip(batches, expected))


# ----------------------------------------------------------------------- distributed sharding (torchrun)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), min_size=0, max_size=400),
    batch_size=st.integers(1, 40),
    replicas=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    epoch=st.integers(0, 5),
    drop_last=st.booleans(),
)
def test_sampler_shards_across_ranks(lengths: list[int], batch_size: int, replicas: int, seed: int, epoch: int,
                                     drop_last: bool) -> None:
    """Per epoch: every rank the same number of batches, disjoint shares of each global batch, every index
    once over all ranks, and each share within its global batch's (narrow) length range."""
    lens = np.asarray(lengths, dtype=np.int64)

    def sampler(rank: int, replicas: int = replicas) -> BucketBatchSampler:
        s = BucketBatchSampler(lens, batch_size, seed=seed, drop_last=drop_last, num_replicas=replicas, rank=rank)
        s.set_epoch(epoch)
        return s

    single = sampler(0, 1)
    glob = single.global_batches()
    per_rank = [sampler(r).batches() for r in range(replicas)]
    assert all(len(b) == len(glob) for b in per_rank)  # DDP: the same number of steps everywhere
    assert all(len(list(sampler(r))) == len(glob) for r in range(replicas))
    seen: list[int] = []
    for step, gb in enumerate(glob):
        shares = [per_rank[r][step] for r in range(replicas)]
        np.testing.assert_array_equal(np.concatenate(shares), gb)  # the shares partition the global batch
        sizes = [len(s) for s in shares]
        assert max(sizes) - min(sizes) <= 1
        for s in shares:
            if len(s):  # contiguous in the length-sorted batch: no wider than the batch's own range
                assert lens[gb].min() <= lens[s].min() and lens[s].max() <= lens[gb].max()
        seen.extend(np.concatenate(shares).tolist())
    assert len(seen) == len(set(seen))
    if not drop_last:
        assert sorted(seen) == list(range(len(lens)))
    # deterministic: the same seed and epoch give the same shares; and a single process is unchanged
    assert all(np.array_equal(a, b) for a, b in zip(per_rank[-1], sampler(replicas - 1).batches(), strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(single.batches(), glob, strict=True))


def test_sampler_rejects_bad_rank() -> None:
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([1, 2, 3], 2, num_replicas=2, rank=2)
