"""How many threads a pool of CPU work (decoding, fingerprinting, verifying) may use; no torch imported here,
so that the near-copy grouping and the decoders stay light."""

from __future__ import annotations

import os


def cpu_threads(limit: int = 8) -> int:
    """Threads for a pool of CPU work (decoding, verifying): the cores this process may use, at most `limit`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(limit, cores))
