"""Operating costs: what a day-to-day run costs end to end when there is little or nothing to do.

Per tree (this one and, with --baseline-tree, a checkout of an earlier commit, e.g.
`git worktree add /tmp/base <commit>`), in its own ARCHIVE_HOME over the same archive (one
still per decade in --decades decades: catalogued, then skipped by every model stage):

- unchanged run: `archive-pipeline run` over the built, unchanged archive (end to end: process
  start, imports, Dagster, a listing and a table read per decade); median of --repeats;
- UI no-op run: `dagster dev` on that instance, every asset of one decade launched as the
  Materialize button does, from the launch to SUCCESS (the daemon dequeues it, a run worker
  starts, imports, finds everything cached); median of --repeats;
- new file: a 10 s recording (the JFK clip) lands in a new decade and `archive-pipeline run
  --decade` processes it with the default models (Ray start, model loads, compute); once.
  With warm model workers this is the figure that should fall (issue 30's target: 30 s from
  the file landing, with the sensor's tick on top).

Prints figures, then one JSON line. `--quick`: 2 decades, 1 repeat, no new-file run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "media"
DECADES = ["1950s", "1960s", "1970s", "1980s", "1990s", "2000s"]


def build_inbox(inbox: Path, decades: list[str]) -> None:
    """One small still per decade (a folder per decade)."""
    from PIL import Image

    for i, decade in enumerate(decades):
        (inbox / decade).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (40 * i % 255, 90, 160)).save(inbox / decade / "still.png")


def tree_env(tree: Path, home: Path) -> dict[str, str]:
    """The environment of a command of `tree` over `home` (its package first on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    return env | {
        "PYTHONPATH": str(tree),
        "ARCHIVE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
    }


def python(tree: Path, home: Path, *args: str) -> str:
    """Run Python with ARGS in `tree` over `home`; its standard output (raises with its output
    on failure)."""
    out = subprocess.run(
        [sys.executable, *args],
        cwd=tree,
        env=tree_env(tree, home),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"{args[:3]} in {tree} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out.stdout


def cli(tree: Path, home: Path, *args: str) -> float:
    """Run `archive-pipeline ARGS` of `tree`; its wall time."""
    start = time.perf_counter()
    python(tree, home, "-m", "archive_pipeline.cli", *args)
    return time.perf_counter() - start


def ui_noop(tree: Path, home: Path, decade: str, repeats: int) -> list[float]:
    """Seconds from the Materialize launch of every asset of `decade` to SUCCESS, per run (a
    child process of `tree`, so that its own `archive_pipeline.ui` drives its `dagster dev`)."""
    code = f"""
import json, time
from pathlib import Path
from archive_pipeline.ui import DagsterDev
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
import os
home = Path({str(home)!r})
seconds = []
with DagsterDev(port=port, env=dict(os.environ), log_path=home / "dev.log") as dev:
    dev.set_nux_seen()
    nodes = dev.graphql('''{{ assetNodes {{ assetKey {{ path }} isMaterializable }} }}''')
    assets = [n["assetKey"]["path"][0] for n in nodes["assetNodes"] if n["isMaterializable"]]
    for _ in range({repeats}):
        start = time.perf_counter()
        run_id = dev.materialize(assets, partition={decade!r})
        status = dev.wait_for_run(run_id, timeout_s=600)
        seconds.append(time.perf_counter() - start)
        assert status == "SUCCESS", (status, (home / "dev.log").read_text()[-3000:])
print(json.dumps(seconds))
"""
    return json.loads(python(tree, home, "-c", code).strip().splitlines()[-1])


def measure(tree: Path, work: Path, decades: list[str], repeats: int, new_file: bool) -> dict:
    """Every figure for one tree, in a fresh ARCHIVE_HOME under `work`."""
    home = work / tree.name
    build_inbox(home / "inbox", decades)
    cold = cli(tree, home, "run")
    unchanged = [cli(tree, home, "run") for _ in range(repeats)]
    ui = ui_noop(tree, home, decades[0], repeats)
    figures = {
        "tree": str(tree),
        "decades": len(decades),
        "cold_run_s": round(cold, 1),
        "unchanged_run_s": round(statistics.median(unchanged), 1),
        "unchanged_runs_s": [round(s, 1) for s in unchanged],
        "ui_noop_run_s": round(statistics.median(ui), 1),
        "ui_noop_runs_s": [round(s, 1) for s in ui],
    }
    if new_file:
        (home / "inbox/2010s").mkdir(parents=True)
        shutil.copyfile(SHARED / "speech/jfk.flac", home / "inbox/2010s/jfk.flac")
        figures["new_10s_file_run_s"] = round(cli(tree, home, "run", "--decade", "2010s"), 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-tree", type=Path, help="a checkout of an earlier commit")
    parser.add_argument("--decades", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 decades, 1 repeat, no new file")
    parser.add_argument("--workdir", type=Path, help="keep the homes here (default: a temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.decades, args.repeats = 2, 1
    decades = DECADES[: args.decades]
    trees = [REPO] + ([args.baseline_tree.resolve()] if args.baseline_tree else [])
    with tempfile.TemporaryDirectory(prefix="ops-bench-", dir=args.workdir) as work:
        results = {}
        for tree in trees:
            label = "this tree" if tree == REPO else "baseline"
            results[label] = figures = measure(
                tree, Path(work), decades, args.repeats, new_file=not args.quick
            )
            print(
                f"{label:>9}: unchanged run over {len(decades)} decades "
                f"{figures['unchanged_run_s']} s (median of {args.repeats}), UI no-op run of one "
                f"decade {figures['ui_noop_run_s']} s, cold run {figures['cold_run_s']} s"
                + (
                    f", new 10 s file {figures['new_10s_file_run_s']} s"
                    if "new_10s_file_run_s" in figures
                    else ""
                )
            )
    if "baseline" in results:
        base, now = results["baseline"], results["this tree"]
        results["speedup"] = {
            key: round(base[key] / now[key], 2)
            for key in ("unchanged_run_s", "ui_noop_run_s", "new_10s_file_run_s")
            if key in base and key in now and now[key]
        }
        print(f"speedup against the baseline: {results['speedup']}")
    results["targets_s"] = {"unchanged_run_s": 15, "ui_noop_run_s": 10, "new_10s_file_run_s": 30}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
