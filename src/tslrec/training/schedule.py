"""Learning-rate schedules shared by backbone training and fine-tuning.

A rate is a function of the optimizer step alone, so a resumed run needs no scheduler state
and continues on exactly the curve an uninterrupted run follows.
"""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["constant", "cosine"]


def learning_rate(peak: float, warmup: float, schedule: Schedule, step: int, total: int) -> float:
    """The rate of step `step` (0-based) of `total`: linear warm-up over the first `warmup`
    share of the steps, then `peak` held (`constant`) or decayed to zero (`cosine`)."""
    warmup_steps = int(warmup * total)
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if schedule == "constant":
        return peak
    progress = (step - warmup_steps) / max(total - warmup_steps, 1)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
