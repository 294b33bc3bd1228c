"""Distributed-training plumbing for ``torchrun --nproc_per_node=N -m quickdraw train ...`` (DDP).

nanoGPT's pattern (karpathy/nanoGPT ``train.py``): a run is distributed when torchrun set ``RANK``/
``WORLD_SIZE`` in the environment; the process group is nccl on CUDA and gloo on CPU; each process uses the
GPU ``cuda:LOCAL_RANK``; only rank 0 (the "master process") writes files and logs. Multi-node runs need
nothing here: torchrun's own rendezvous flags (``--nnodes``, ``--rdzv-endpoint``) set the same variables.

What differs from nanoGPT: the global batch stays ``train.batch_size`` whatever the number of ranks (nanoGPT
keeps it by dividing gradient accumulation steps); each global batch is split across the ranks
(:class:`quickdraw.datasets.BucketBatchSampler` with ``num_replicas``/``rank``), so the schedule, the learning
rate and the result do not depend on the world size, and a 2-rank run takes the same optimizer steps as a
single process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["DistContext", "all_reduce_sums", "broadcast_error", "from_env"]

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Where this process sits in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    #: True when this module created the process group (and so destroys it in :meth:`close`).
    owns_group: bool = False
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, dvclive files and logs."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        """Destroy the process group if :func:`from_env` created it."""
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_group = False


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer (torchrun sets it)") from None


def from_env(device_type: str) -> DistContext:
    """The distributed context torchrun described in the environment; initialises the process group.

    ``device_type`` is ``"cuda"`` (nccl) or anything else (gloo). Without torchrun's variables, or with
    ``WORLD_SIZE=1``, this is a single-process context and nothing is initialised.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    if world <= 1:
        return DistContext()
    if not torch.distributed.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device_type == "cuda" else "gloo"
    owns = False
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
        owns = True
    else:
        backend = str(torch.distributed.get_backend())
    return DistContext(rank=rank, world_size=world, local_rank=local, owns_group=owns, backend=backend)


def all_reduce_sums(ctx: DistContext, values: Sequence[float], device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over every rank (the values themselves in a single process).

    float64 so that counts and sums of losses survive the reduction exactly enough for identical decisions
    (every rank gets the very same reduced numbers, so plateau and early-stopping decisions agree).
    """
    if not ctx.enabled:
        return [float(v) for v in values]
    # nccl reduces only CUDA tensors; gloo only CPU ones.
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return [float(v) for v in t.cpu().tolist()]


def broadcast_error(ctx: DistContext, error: BaseException | None, device: torch.device) -> None:
    """Make a failure on rank 0 (e.g. an output folder it refused to claim) fail every rank, not hang them.

    Every rank calls this at the same point; rank 0 passes its exception or None. Rank 0 re-raises its
    own; the others raise a RuntimeError saying rank 0 failed (its message is in rank 0's output).
    """
    if not ctx.enabled:
        if error is not None:
            raise error
        return
    flag = torch.tensor([1.0 if error is not None else 0.0], device=device)
    torch.distributed.broadcast(flag, src=0)
    if error is not None:
        raise error
    if float(flag.item()) > 0:
        raise RuntimeError("rank 0 failed before training started (its error message is above)")
