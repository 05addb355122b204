"""PeakMemory: the growth it reports is what the measured block held, not what came before."""

from __future__ import annotations

import numpy as np

from tslrec.memory import PeakMemory


def test_the_peak_growth_is_what_the_block_allocated_not_what_the_process_held():
    held = np.ones(128 * 2**20 // 8)  # 128 MiB held before the block: not the block's
    with PeakMemory(interval=0.01) as peak:
        block = np.ones(256 * 2**20 // 8)  # 256 MiB, every page touched, alive until exit
        assert block[-1] == 1.0
    assert 200 <= peak.growth_mib < 256 + 64  # the block, not the block plus `held`
    assert peak.figures() == {"peak_growth_mib": peak.growth_mib, "peak_rss_mib": peak.peak / 2**20}
    del block
    with peak:  # reusable: a second use measures from its own start
        small = np.ones(32 * 2**20 // 8)
        assert small[0] == 1.0
    assert 24 <= peak.growth_mib < 96
    assert held.sum() > 0
