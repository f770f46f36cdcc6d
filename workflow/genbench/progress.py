"""Progress of long loops (generation, feature extraction) to the rule's log through ``logging``: items done, rate
and ETA, at most every ``every`` seconds and once at the end (never a console progress bar in a job's log)."""

from __future__ import annotations

import logging
import math
import time


class Progress:
    def __init__(self, what: str, total: int, every: float = 30.0, logger: logging.Logger | None = None):
        self.what, self.total, self.every = what, total, every
        self.log = logger or logging.getLogger("genbench")
        self.done = 0
        self.t0 = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.done < self.total and now - self.last < self.every:
            return
        self.last = now
        rate = self.done / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        self.log.info("%s: %d/%d images (%.1f%%), %.2f images/s, ETA %s", self.what, self.done, self.total,
                      100.0 * self.done / max(self.total, 1), rate, format_eta(eta))


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
