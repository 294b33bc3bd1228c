"""Seeded random network faults (drops, resets, 429/500/503, stalls) during fetch: output byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from quickdraw.pipeline.fetch import fetch
from tests.faultproxy import FaultProxy
from tests.integration.test_reliability_network import OPTS, WORDS, clean, dir_bytes, proxy  # noqa: F401 (fixtures)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_faults_seeded(proxy: FaultProxy, clean: dict[str, bytes], tmp_path: Path, seed: int) -> None:
    proxy.random_faults(0.3, seed, stall=2)
    res = fetch(WORDS, tmp_path, OPTS, concurrency=2)
    assert not res.failed, [c.error for c in res.classes]
    assert proxy.faults(), "the seed injected no fault"
    assert dir_bytes(tmp_path) == clean
