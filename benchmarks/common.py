"""Helpers shared by the benchmarks."""

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process image in MB (VmHWM: reset by exec, unlike
    ru_maxrss, which a child inherits from the parent it was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
