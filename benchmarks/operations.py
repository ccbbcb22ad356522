"""Operating costs: what a day-to-day run costs end to end when there is little or nothing to do.

Per tree (this one and, with --baseline-tree, a checkout of an earlier commit, e.g.
`git worktree add /tmp/base <commit>`), in its own ARCHIVE_HOME over the same archive (one
still per decade in --decades decades: catalogued, then skipped by every model stage):

- unchanged run: `archive-pipeline run` over the built, unchanged archive, end to end (a tree
  that skips decades unchanged since their last clean run does so); median of --repeats;
- unchanged rerun: the same with `--rerun` (every decade through Dagster: a listing and a table
  read per asset), where the tree has it;
- UI no-op run: `dagster dev` on that instance, every asset of one decade launched as the
  Materialize button does, from the launch to SUCCESS (the daemon dequeues it, a run worker
  starts, imports, finds everything cached); median of --repeats;
- sensor, new file: with the inbox sensor on (and, where the tree has them, the warm model
  workers of `archive-pipeline ui` beside `dagster dev`), a 10 s recording lands in a new
  decade; seconds from the file landing to its run's SUCCESS (the sensor's poll, the queue, the
  run worker, the default models). Two files, one after the other: the first loads the models
  into the warm workers, the second finds them loaded (issue 30's target: 30 s);
- new file, command line: a third 10 s recording through `archive-pipeline run --decade` without
  warm workers (Ray start, model loads, compute); once.

Prints figures, then one JSON line. `--quick`: 2 decades, 1 repeat, no new-file figures, the
stages in the run's process (no Ray start: the smoke run's cold run catalogues two stills).
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
sys.path.insert(0, str(REPO))
from benchmarks.common import tree_file, tree_module  # noqa: E402

SHARED = REPO.parent / "shared" / "media"
DECADES = ["1950s", "1960s", "1970s", "1980s", "1990s", "2000s"]


def build_inbox(inbox: Path, decades: list[str]) -> None:
    """One small still per decade (a folder per decade)."""
    from PIL import Image

    for i, decade in enumerate(decades):
        (inbox / decade).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (40 * i % 255, 90, 160)).save(inbox / decade / "still.png")


INLINE = False  # --quick: the stages run in the run's process (stills need no model, no Ray)


def tree_env(tree: Path, home: Path) -> dict[str, str]:
    """The environment of a command of `tree` over `home` (its package first on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    return env | {
        "PYTHONPATH": str(tree),
        "ARCHIVE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        **({"ARCHIVE_RAY_ADDRESS": "inline"} if INLINE else {}),
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
    python(tree, home, "-m", tree_module(tree, "cli"), *args)
    return time.perf_counter() - start


def recording(path: Path, volume: float) -> None:
    """A 10 s recording of its own (the JFK clip at another volume: other bytes, other audio,
    so nothing is copied from a decade that has the clip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-i", str(SHARED / "speech/jfk.flac"), "-t", "10"),
            *("-af", f"volume={volume}", str(path)),
        ],
        check=True,
    )


def ui_session(tree: Path, home: Path, decade: str, repeats: int, new_files: bool) -> dict:
    """In one `dagster dev` of `tree` (a child process, so that its own `ui` module
    drives it): the UI no-op runs of `decade`, then (`new_files`) the sensor runs of two new
    recordings. Seconds per run."""
    code = f"""
import json, os, shutil, socket, subprocess, time
from pathlib import Path
import {tree_module(tree, "ui")} as ui
DagsterDev = ui.DagsterDev
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
home = Path({str(home)!r})
out = {{"ui_noop": [], "sensor_new_file": [], "warm_workers": hasattr(ui, "WorkerService")}}
service = None
if {new_files!r} and out["warm_workers"]:  # what `archive-pipeline ui` starts beside dagster dev
    service = ui.WorkerService(env=dict(os.environ), log_path=home / "workers.log")
    service.start()
try:
    with DagsterDev(port=port, env=dict(os.environ), log_path=home / "dev.log") as dev:
        dev.set_nux_seen()
        nodes = dev.graphql('''{{ assetNodes {{ assetKey {{ path }} isMaterializable }} }}''')
        assets = [n["assetKey"]["path"][0] for n in nodes["assetNodes"] if n["isMaterializable"]]
        for _ in range({repeats}):
            start = time.perf_counter()
            run_id = dev.materialize(assets, partition={decade!r})
            status = dev.wait_for_run(run_id, timeout_s=600)
            out["ui_noop"].append(time.perf_counter() - start)
            assert status == "SUCCESS", (status, (home / "dev.log").read_text()[-3000:])
        if {new_files!r}:
            dev.start_sensor("inbox_sensor")
            dev.wait_for("the sensor's first tick", lambda: [
                t for t in dev.sensor_ticks("inbox_sensor") if t["status"] != "STARTED"],
                timeout_s=300, every_s=1)
            for decade, name in (("2010s", "first.flac"), ("2020s", "second.flac")):
                (home / "inbox" / decade).mkdir(parents=True, exist_ok=True)
                os.replace(home / name, home / "inbox" / decade / "speech.flac")  # lands whole
                start = time.perf_counter()
                run = dev.wait_for("the sensor's run", lambda: next(iter(
                    dev.runs(tag=("dagster/partition", decade))), None), timeout_s=600, every_s=0.5)
                status = dev.wait_for_run(run["runId"], timeout_s=900)
                out["sensor_new_file"].append(time.perf_counter() - start)
                assert status == "SUCCESS", (status, (home / "dev.log").read_text()[-3000:])
finally:
    if service is not None:
        service.stop()
print(json.dumps(out))
"""
    return json.loads(python(tree, home, "-c", code).strip().splitlines()[-1])


def measure(tree: Path, work: Path, decades: list[str], repeats: int, new_file: bool) -> dict:
    """Every figure for one tree, in a fresh ARCHIVE_HOME under `work`."""
    home = work / tree.name
    build_inbox(home / "inbox", decades)
    cold = cli(tree, home, "run")
    unchanged = [cli(tree, home, "run") for _ in range(repeats)]
    rerun = "--rerun" in tree_file(tree, "cli").read_text()
    reruns = [cli(tree, home, "run", "--rerun") for _ in range(repeats)] if rerun else []
    if new_file:
        for name, volume in (("first.flac", 0.9), ("second.flac", 0.8), ("third.flac", 0.7)):
            recording(home / name, volume)
    session = ui_session(tree, home, decades[0], repeats, new_file)
    ui = session["ui_noop"]
    figures = {
        "tree": str(tree),
        "decades": len(decades),
        "cold_run_s": round(cold, 1),
        "unchanged_run_s": round(statistics.median(unchanged), 1),
        "unchanged_runs_s": [round(s, 1) for s in unchanged],
        "ui_noop_run_s": round(statistics.median(ui), 1),
        "ui_noop_runs_s": [round(s, 1) for s in ui],
    }
    if reruns:
        figures["unchanged_rerun_s"] = round(statistics.median(reruns), 1)
    if new_file:
        first, second = session["sensor_new_file"]
        figures["warm_workers"] = session["warm_workers"]
        figures["sensor_first_file_s"] = round(first, 1)  # loads the models
        figures["sensor_new_10s_file_s"] = round(second, 1)  # warm models, where the tree has them
        (home / "inbox/1900s").mkdir(parents=True)
        shutil.copyfile(home / "third.flac", home / "inbox/1900s/speech.flac")
        figures["new_10s_file_run_s"] = round(cli(tree, home, "run", "--decade", "1900s"), 1)
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
        global INLINE
        args.decades, args.repeats, INLINE = 2, 1, True
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
                f"{figures['unchanged_run_s']} s (median of {args.repeats})"
                + (
                    f", with --rerun {figures['unchanged_rerun_s']} s"
                    if "unchanged_rerun_s" in figures
                    else ""
                )
                + f", UI no-op run of one decade {figures['ui_noop_run_s']} s, cold run "
                f"{figures['cold_run_s']} s"
                + (
                    f", sensor: new 10 s file {figures['sensor_new_10s_file_s']} s from landing "
                    f"to SUCCESS (the first, loading the models: "
                    f"{figures['sensor_first_file_s']} s; warm workers: "
                    f"{figures['warm_workers']}), command line without warm workers "
                    f"{figures['new_10s_file_run_s']} s"
                    if "new_10s_file_run_s" in figures
                    else ""
                )
            )
    if "baseline" in results:
        base, now = results["baseline"], results["this tree"]
        results["speedup"] = {
            key: round(base[key] / now[key], 2)
            for key in (
                "unchanged_run_s",
                "ui_noop_run_s",
                "sensor_new_10s_file_s",
                "new_10s_file_run_s",
            )
            if key in base and key in now and now[key]
        }
        print(f"speedup against the baseline: {results['speedup']}")
    results["targets_s"] = {"unchanged_run_s": 15, "ui_noop_run_s": 10, "sensor_new_10s_file_s": 30}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
