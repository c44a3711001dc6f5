"""What the benchmark scripts read about their own process."""

from __future__ import annotations

import os


def rss_mb() -> float:
    """Resident memory of this process, in MB (NaN where /proc has no VmRSS)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))
