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


def tree_module(tree: Path, name: str) -> str:
    """The dotted name of operations module `name` (cli, ui, runner) in the checkout `tree`:
    under ops/ since the package's root modules were grouped by layer, at the package root in
    an older baseline tree."""
    grouped = (tree / "archive_pipeline" / "ops" / f"{name}.py").exists()
    return f"archive_pipeline.{'ops.' if grouped else ''}{name}"


def tree_file(tree: Path, name: str) -> Path:
    """The source file of operations module `name` in the checkout `tree` (see tree_module)."""
    return tree / (tree_module(tree, name).replace(".", "/") + ".py")
