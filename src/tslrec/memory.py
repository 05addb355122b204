"""Peak memory of a stretch of work: what making an item table costs besides seconds.

A thread samples the process's resident set (psutil) while the work runs; the figure kept is
the peak *growth* over the resident set at the start, so a stage reports what it added, not
what the process already held (the dataset, stage 0). It is host memory only: on a GPU the
model's weights and activations live in device memory, which this does not see. Sampling can
miss a spike shorter than `interval`; for the stages measured here (minutes of SFT) that is
noise.
"""

from __future__ import annotations

import threading
from types import TracebackType

import psutil

MIB = 2**20


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.figures()``."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline = self.peak = 0

    def __enter__(self) -> PeakMemory:
        self.baseline = self.peak = self._process.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._record()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._record()

    def _record(self) -> None:
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def growth_mib(self) -> float:
        """The peak resident set above the one at the start, in MiB."""
        return (self.peak - self.baseline) / MIB

    def figures(self) -> dict[str, float]:
        """JSON-ready: the growth and the absolute peak of the resident set, MiB."""
        return {"peak_growth_mib": self.growth_mib, "peak_rss_mib": self.peak / MIB}
