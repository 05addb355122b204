"""PeakMemory: the growth it reports is what the measured block held, not what came before."""

from __future__ import annotations

import numpy as np

from tslrec.memory import PeakMemory


def test_the_peak_growth_covers_an_allocation_the_block_held_and_freed():
    held = np.ones(16 * 2**20 // 8)  # 16 MiB held before: not the block's
    with PeakMemory(interval=0.01) as peak:
        block = np.ones(256 * 2**20 // 8)  # 256 MiB, every page touched
        block.sum()
        del block
    assert 200 <= peak.growth_mib < 1024
    figures = peak.figures()
    assert figures["peak_growth_mib"] == peak.growth_mib
    assert figures["peak_rss_mib"] >= peak.growth_mib + held.nbytes / 2**20
    with PeakMemory(interval=0.01) as idle:
        pass
    assert idle.growth_mib < 64
