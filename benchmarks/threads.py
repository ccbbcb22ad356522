"""How torch's OpenMP threads wait: the package's OMP_WAIT_POLICY=PASSIVE against libgomp's
default (the variable unset: a thread spins after each parallel region before it sleeps).

TransNetV2 (packaged weights) on --windows windows of 100 frames with --threads threads, each
case in a fresh process (OpenMP reads the variable when torch loads): alone, and beside one
busy process (a pure-Python loop on one core, as another worker, a decoder or the other test
lane would be). Both cases import archive_pipeline first, as every worker does; the default's
case then takes the variable away again before torch loads. Figures: wall and CPU seconds of
the model calls (medians of --repeats), and CPU over the same calls alone: a spinning thread
burns the core its neighbour needs. Ends with one JSON line; `--quick`: the two cases beside a
busy process, 1 window, 1 repeat (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUSY = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\n"
BUSY += "while time.monotonic() < end:\n    pass\n"


def child(windows: int, threads: int, package: bool, busy: bool) -> None:
    """The model calls in this process: wall and CPU seconds as one JSON line. The package is
    imported in both cases (it sets OMP_WAIT_POLICY); the default's case takes the variable
    away again before torch loads. `busy`: the neighbour runs from the warm-up to the end."""
    from archive_pipeline.stages.shots import load_transnet

    if not package:
        os.environ.pop("OMP_WAIT_POLICY")
    import torch

    torch.set_num_threads(threads)
    model = load_transnet("cpu")
    frames = torch.randint(0, 255, (1, 100, 27, 48, 3), dtype=torch.uint8)
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY, "3600"]) if busy else None
    try:
        with torch.inference_mode():
            model(frames)  # warm-up
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(windows):
                model(frames)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    policy = os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default)")
    print(json.dumps({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "policy": policy}))


def measure(windows: int, threads: int, package: bool, busy: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    cmd = [sys.executable, __file__, "--child", str(windows), str(threads)]
    cmd += [str(int(package)), str(int(busy))]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="busy cases, 1 window, 1 repeat (smoke run)"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        windows, threads, package, busy = map(int, args.child)
        child(windows, threads, bool(package), bool(busy))
        return
    if args.quick:
        args.windows, args.repeats = 1, 1
    figures: dict = {"benchmark": "threads", "windows": args.windows, "threads": args.threads}
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):  # the cases alternate, so a noisy minute hits them all
        for label, package in (("default", False), ("package", True)):
            for busy in (True,) if args.quick else (False, True):
                key = f"{label}_{'busy' if busy else 'alone'}"
                runs.setdefault(key, []).append(measure(args.windows, args.threads, package, busy))
    for key, results in runs.items():
        figures[key] = {
            "policy": results[0]["policy"],
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "cpu_s": statistics.median(r["cpu_s"] for r in results),
        }
        print(
            f"{key:<14} {figures[key]['policy']:<24} wall {figures[key]['wall_s']:6.2f} s  "
            f"CPU {figures[key]['cpu_s']:6.2f} s"
        )
    figures["package_busy_cpu_over_default_busy"] = round(
        figures["package_busy"]["cpu_s"] / figures["default_busy"]["cpu_s"], 3
    )
    if not args.quick:
        for label in ("default", "package"):
            ratio = figures[f"{label}_busy"]["cpu_s"] / figures[f"{label}_alone"]["cpu_s"]
            figures[f"{label}_busy_cpu_over_alone"] = round(ratio, 3)
        print(
            "beside a busy process the model calls take "
            f"{figures['default_busy_cpu_over_alone']:.2f}x their CPU alone with the default, "
            f"{figures['package_busy_cpu_over_alone']:.2f}x with the package's passive waiting"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
