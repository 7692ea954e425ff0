"""A dependency-free progress bar on stderr for long jobs (seed, ETL backfill, benchmarks)."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: float = 1.0, stream=sys.stderr, enabled: bool = True):
        self.label, self.total, self.stream, self.enabled = label, total or 1.0, stream, enabled
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, done: float, note: str = "") -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < self.total and now - self._last < 0.2:
            return
        self._last = now
        frac = max(0.0, min(1.0, done / self.total))
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac:6.1%} {now - self.started:6.1f}s {note:<28}")
        self.stream.flush()

    def close(self, note: str = "done") -> None:
        self.update(self.total, note)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
