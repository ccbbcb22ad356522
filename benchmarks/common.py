"""Helpers shared by the benchmarks."""

import json
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    """Peak resident memory of this process image in MB (VmHWM: reset by exec, unlike
    ru_maxrss, which a child inherits from the parent it was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, mode: str, path: Path, **options: object) -> dict:
    """Re-run a benchmark script in a fresh process (`--child MODE --child-path PATH --opt v`)
    and return the JSON its last output line holds (fresh process: clean peak RSS)."""
    cmd = [sys.executable, script, "--child", mode, "--child-path", str(path)]
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])
