"""Archive-scale execution: memory, commits, kill -9 and resume, warm re-runs, fixed cost.

Two parts, each in fresh processes (clean peak RSS), medians of --repeats where repeated:

replay: the real commit path (process_partition on Ray workers + Lance batch commits) with a
    stage that returns canned shots + keyframes results (one shot and one 15 KB thumbnail per
    2 s of video: the density issue 11 reports, 76k keyframes in 40 h), so decades of 10, 100
    and 1,000 items and of 1, 10, 40 and 100 h of video (half-hour items, so the decade grows
    and the batches do not; then 100 h as 40 items of 2.5 h) run in minutes without models.
    Per size:
    wall time per item, peak RSS of the Dagster-side process and of the Ray workers, commit
    time, Lance versions and fragments left, the unchanged decade's re-run (warm) against the
    first run (cold). Then kill -9 of the largest decade at about half its items and a re-run:
    the fraction of items computed twice, and the Ray processes left behind.
pipeline: `archive-pipeline run` (Dagster, Ray, every model stage) over a synthetic decade of
    distinct speech clips and short videos with an audio track (2-10 s each, built by ffmpeg
    from ../shared/media) with the cheap stage configuration (Whisper tiny.en, PySceneDetect
    'content'); N = 1 (the fixed cost broken down), 10 and --pipeline-n; an unchanged re-run;
    CPU of the whole run against the same job run inline (one process, no Ray: what Ray's
    workers add) and against the model calls alone (the stages' setup() and process() on the
    same items, their CPU counted inside the calls: what Dagster, Lance, the ledger and Ray
    add together).

demo: the demo archive with the default models: cold run of every decade, the unchanged
    re-run, CPU against the model calls alone.

integrity: what the write lease and the ledger-table reconciliation cost an unchanged decade:
    the replay's warm re-run of --integrity-n items (1,000) timed with this tree and, with
    --baseline-tree (a checkout of an earlier commit: `git worktree add /tmp/base <commit>`),
    with that tree, alternating, medians of at least three; the seconds spent inside the lease
    and the reconciliation. With --integrity-home (a built ARCHIVE_HOME such as the demo's),
    also `archive-pipeline run` over that unchanged archive, this tree against the baseline.

Prints figures, then one JSON line. `--quick` runs every part at tiny sizes (a smoke run: it
checks the benchmark runs, its figures are not to compare), the replayed decades (not the kill
-9 one) one after another in one process on one Ray, the integrity figures from its decade of
10 items, the pipeline's runs with their stages in the command's process (no Ray).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "media"
sys.path.insert(0, str(REPO))

from benchmarks.common import peak_rss_mb, tree_file, tree_module  # noqa: E402

KEYFRAME_EVERY_S = 2.0
THUMBNAIL_BYTES = 15_000
ITEM_H = 0.5  # the media-hours series: decades of half-hour videos


# ---------------------------------------------------------------- replay (child process) ----


class ReplayShots:
    """Canned shots + keyframes for a video of the item's duration (no decode, no model)."""

    name = "shots"
    tables = ("shots", "keyframes")
    code_version = "replay"
    model_id = "replay"
    rebuilds_from_rows = False  # (the stage contract's capabilities, declared as BaseStage's)

    def __init__(self, calls: str, delay_s: float = 0.0):
        from archive_pipeline.core.compute import StageResources

        self.calls = calls
        self.delay_s = delay_s
        self.params = {}
        self.resources = StageResources(num_cpus=1)

    def setup(self) -> None:
        pass

    def process(self, item):
        rng = random.Random(item.sha256)
        n = max(1, int((item.duration_s or 0) / KEYFRAME_EVERY_S))
        if self.delay_s:
            time.sleep(self.delay_s)
        with open(self.calls, "a") as f:
            f.write(item.store_key + "\n")
        return {"n": n, "thumbnails": [rng.randbytes(THUMBNAIL_BYTES) for _ in range(n)]}

    def content_id(self, item):
        return item.sha256

    def ref(self, item):
        return item.ref

    def rows(self, item, value, *, decade):
        from archive_pipeline.core.ids import row_id

        shots, keyframes = [], []
        for i, thumb in enumerate(value["thumbnails"]):
            t = i * KEYFRAME_EVERY_S
            common = {"decade": decade, "media_id": item.media_id, "uri": item.uri}
            shots.append(
                {
                    **common,
                    "row_id": row_id("shots", item.uri, str(i)),
                    "shot_index": i,
                    "start_frame": int(t * 25),
                    "end_frame": int((t + KEYFRAME_EVERY_S) * 25) - 1,
                    "start_s": t,
                    "end_s": t + KEYFRAME_EVERY_S,
                    "boundary_score": 0.9,
                }
            )
            keyframes.append(
                {
                    **common,
                    "row_id": row_id("keyframes", item.uri, str(i)),
                    "keyframe_index": i,
                    "shot_index": i,
                    "frame_index": int(t * 25) + 12,
                    "time_s": t + 0.5,
                    "phash": f"{i:016x}",
                    "thumbnail": thumb,
                    "thumbnail_format": "jpeg",
                    "thumbnail_width": 320,
                    "thumbnail_height": 180,
                    "replaces": [],
                }
            )
        return {"shots": shots, "keyframes": keyframes}


def _items(n: int, duration_s: float):
    from archive_pipeline.stages.base import CatalogItem

    return [
        CatalogItem(f"file:///bench/{i:05d}.mp4", f"{i:05d}.mp4", f"m{i:05d}", f"s{i}", duration_s)
        for i in range(n)
    ]


class WorkerMemory:
    """Samples the resident memory of this process's descendants (Ray's workers) every 0.5 s."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.peak_worker = 0.0
        self.peak_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            rss = []
            for child in self.me.children(recursive=True):
                try:
                    if "ray::" in child.name() or "default_worker" in " ".join(child.cmdline()):
                        rss.append(child.memory_info().rss / 1024**2)
                except psutil.Error:
                    continue
            if rss:
                self.peak_worker = max(self.peak_worker, max(rss))
                self.peak_total = max(self.peak_total, sum(rss))
            self._stop.wait(0.5)

    def __enter__(self) -> WorkerMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def replay_child(root: str, n: int, duration_s: float, delay_s: float, calls: str, runtime) -> dict:
    """One cold run and one warm re-run of a replayed decade, on `runtime` (the Ray this
    fresh process started: `child`)."""
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.stages.partition import process_partition

    wh = Warehouse(root)
    commit_s = [0.0]
    for name in ("upsert", "delete_where"):
        original = getattr(wh, name)

        def timed(*args, _original=original, **kw):
            start = time.perf_counter()
            try:
                return _original(*args, **kw)
            finally:
                commit_s[0] += time.perf_counter() - start

        setattr(wh, name, timed)
    items = _items(n, duration_s)
    stage = ReplayShots(calls, delay_s)
    with WorkerMemory() as workers:
        start = time.perf_counter()
        report = process_partition(
            stage=stage, decade="1980s", items=items, warehouse=wh, compute=runtime
        )
        cold_s = time.perf_counter() - start
    cold_peak = peak_rss_mb()
    # what the integrity guards cost the unchanged decade: the write lease (taken and
    # released) and the ledger-table reconciliation, timed inside the warm run
    integrity_s = [0.0]
    timed_parts = _time_integrity(wh, integrity_s)
    start = time.perf_counter()
    warm = process_partition(
        stage=stage, decade="1980s", items=items, warehouse=wh, compute=runtime
    )
    warm_s = time.perf_counter() - start
    timed_parts()
    tables = {}
    for name in ("shots", "keyframes", "stage_items"):
        table = wh.table(name)
        tables[name] = {
            "rows": table.count_rows(),
            "versions": len(table.list_versions()),
            "fragments": table.stats()["fragment_stats"]["num_fragments"],
        }
    assert report.n_failed == 0 and warm.n_computed == 0  # (a resumed run computes fewer)
    return {
        "items": n,
        "media_h": round(n * duration_s / 3600, 3),
        "cold_s": round(cold_s, 2),
        "s_per_item": round(cold_s / n, 4),
        "commit_s": round(commit_s[0], 2),
        "batches": report.batches,
        "driver_peak_rss_mb": round(cold_peak, 1),
        "worker_peak_rss_mb": round(workers.peak_worker, 1),
        "workers_total_peak_rss_mb": round(workers.peak_total, 1),
        "warm_s": round(warm_s, 3),
        "warm_over_cold": round(warm_s / cold_s, 4),
        "warm_integrity_s": round(integrity_s[0], 4),
        "warm_integrity_share": round(integrity_s[0] / warm_s, 4),
        "tables": tables,
    }


def _time_integrity(wh, total: list[float]):
    """Add the time spent in the write lease and the reconciliation to `total[0]` (when the
    tree has them: a baseline checkout does not); returns the function that undoes it."""
    import importlib

    try:  # where the reconciliation lives: stages/ledger.py, or stages/base.py in older trees
        base, name = importlib.import_module("archive_pipeline.stages.ledger"), "rows_missing"
    except ImportError:
        base, name = importlib.import_module("archive_pipeline.stages.base"), "_rows_missing"
    undo = []
    check = getattr(base, name, None)
    if check is not None:

        def rows_missing(*args, **kw):
            start = time.perf_counter()
            try:
                return check(*args, **kw)
            finally:
                total[0] += time.perf_counter() - start

        setattr(base, name, rows_missing)
        undo.append(lambda: setattr(base, name, check))
    writer = getattr(wh, "writer", None)
    if writer is not None:
        import contextlib

        @contextlib.contextmanager
        def timed_writer(*args, **kw):
            start = time.perf_counter()
            manager = writer(*args, **kw)
            manager.__enter__()
            total[0] += time.perf_counter() - start
            try:
                yield
            finally:
                start = time.perf_counter()
                manager.__exit__(None, None, None)
                total[0] += time.perf_counter() - start

        wh.writer = timed_writer
        undo.append(lambda: delattr(wh, "writer"))
    return lambda: [u() for u in undo]


def integrity_part(
    tmp: Path, n: int, repeats: int, baseline: Path | None, *, done: dict | None = None
) -> dict:
    """The unchanged decade of `n` items re-run (warm), this tree against a baseline checkout
    (e.g. `git worktree add /tmp/base <commit>`) in alternation: medians and their ratio, and
    the part of this tree's warm run spent in the lease and the reconciliation. `done`: this
    tree's replayed decade of `n` items, already run (--quick: no process and Ray of its own)."""
    runs: dict[str, list[dict]] = {"this": [done] if done else [], "baseline": []}
    for k in range(repeats):
        for name, tree in (("baseline", baseline), ("this", REPO)):
            if tree is None or (name == "this" and done):
                continue
            script = Path(tree) / "benchmarks" / "scale.py"
            root = tmp / f"integrity_{name}_{k}"
            cmd = [sys.executable, str(script), "--child", "--child-path", str(root)]
            cmd += ["--n", str(n), "--duration-s", "6", "--calls", str(root) + ".calls"]
            env = {**os.environ, "PYTHONPATH": str(tree)}
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, env=env)
            if out.returncode:
                raise RuntimeError(out.stderr[-3000:])
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            shutil.rmtree(root, ignore_errors=True)
            print(f"integrity {name} N={n}: warm {runs[name][-1]['warm_s']} s", flush=True)

    def median(name: str, key: str) -> float | None:
        values = sorted(r[key] for r in runs[name] if key in r)
        return values[len(values) // 2] if values else None

    figures = {
        "items": n,
        "warm_s": median("this", "warm_s"),
        "warm_integrity_s": median("this", "warm_integrity_s"),
        "warm_integrity_share": median("this", "warm_integrity_share"),
        "repeats": repeats,
    }
    if baseline is not None:
        figures["baseline_warm_s"] = median("baseline", "warm_s")
        figures["warm_over_baseline"] = round(figures["warm_s"] / figures["baseline_warm_s"], 3)
    return figures


def unchanged_archive_part(home: Path, repeats: int, baseline: Path | None) -> dict:
    """`archive-pipeline run` over an unchanged, built archive (ARCHIVE_HOME `home`, e.g. after
    `make demo`), with `--rerun` where the tree has it (every decade through Dagster, not
    skipped): wall seconds of this tree's run against the baseline's, alternating. Each
    switch of tree first runs once untimed (derived tables whose code version differs are
    rebuilt), then the timed unchanged run."""
    seconds: dict[str, list[float]] = {"this": [], "baseline": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    env |= {"ARCHIVE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
    for _ in range(repeats):
        for name, tree in (("baseline", baseline), ("this", REPO)):
            if tree is None:
                continue
            cmd = [sys.executable, "-m", tree_module(tree, "cli"), "run"]
            if "--rerun" in tree_file(tree, "cli").read_text():
                cmd.append("--rerun")  # through Dagster: what the lease and ledger cost
            run_env = {**env, "PYTHONPATH": str(tree)}
            for timed in (False, True):
                start = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, env=run_env)
                if out.returncode:
                    raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
                if timed:
                    seconds[name].append(time.perf_counter() - start)
                    print(f"unchanged archive, {name}: {seconds[name][-1]:.1f} s", flush=True)
    figures = {"this_s": round(statistics.median(seconds["this"]), 2), "repeats": repeats}
    if baseline is not None:
        figures["baseline_s"] = round(statistics.median(seconds["baseline"]), 2)
        figures["this_over_baseline"] = round(figures["this_s"] / figures["baseline_s"], 3)
    return figures


def child(args) -> None:
    """The replayed decade of --child-path, or (--child-runs, --quick) several one after
    another, in this process on one Ray."""
    from archive_pipeline.core.ray_runtime import RayRuntime

    runs = json.loads(args.child_runs or "[]") or [(args.child_path, args.n, args.duration_s)]
    runtime = RayRuntime("local", num_cpus=2)
    runtime.ensure_started()
    try:
        for root, n, duration_s in runs:
            calls = args.calls or f"{root}.calls"
            out = replay_child(root, n, duration_s, args.delay_s, calls, runtime)
            print(json.dumps(out), flush=True)
    finally:
        runtime.shutdown()


def run_replay_children(runs: list[tuple[Path, int, float]]) -> dict[str, dict]:
    """(root, items, item seconds) replayed one after another in one fresh process, on one
    Ray: a smoke run's shortcut (the peak RSS figures then span the runs); figures by root."""
    cmd = [sys.executable, __file__, "--child", "--child-runs"]
    cmd.append(json.dumps([(str(root), n, duration_s) for root, n, duration_s in runs]))
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    lines = out.stdout.strip().splitlines()[-len(runs) :]
    return {str(root): json.loads(line) for (root, _, _), line in zip(runs, lines, strict=True)}


def run_replay_child(root: Path, n: int, duration_s: float, delay_s: float = 0.0) -> dict:
    calls = root.parent / f"{root.name}.calls"
    cmd = [sys.executable, __file__, "--child", "--child-path", str(root), "--n", str(n)]
    cmd += ["--duration-s", str(duration_s), "--delay-s", str(delay_s), "--calls", str(calls)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def kill_and_resume(tmp: Path, n: int, duration_s: float) -> dict:
    """kill -9 a replayed decade at ~half its items, re-run it: items computed twice."""
    import psutil

    from archive_pipeline.core.warehouse import Warehouse

    root, calls = tmp / "killed", tmp / "killed.calls"
    cmd = [sys.executable, __file__, "--child", "--child-path", str(root), "--n", str(n)]
    cmd += ["--duration-s", str(duration_s), "--delay-s", "0.05", "--calls", str(calls)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        done = len(calls.read_text().split()) if calls.exists() else 0
        if done >= n // 2:
            break
        time.sleep(0.1)
    tree = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = len(calls.read_text().split())
    committed = Warehouse(str(root)).count("stage_items", {"decade": "1980s", "stage": "shots"})
    killed_at = time.monotonic()

    def left() -> list[str]:
        found = []
        for pid in tree:
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{pid} {process.name()}")
            except psutil.Error:
                continue
        return found

    while left() and time.monotonic() - killed_at < 30:  # the reaper stops the dead run's Ray
        time.sleep(0.25)
    cleaned_s = time.monotonic() - killed_at
    calls.unlink()
    rerun = run_replay_child(root, n, duration_s)
    second = len(calls.read_text().split())
    return {
        "items": n,
        "computed_before_kill": first,
        "committed_before_kill": committed,
        "computed_by_rerun": second,
        "redone": first + second - n,
        "redone_fraction": round((first + second - n) / n, 4),
        "rerun_rows_ok": rerun["tables"]["keyframes"]["rows"]
        == n * max(1, int(duration_s / KEYFRAME_EVERY_S)),
        "ray_processes_left_30s_after_kill": left(),
        "ray_stopped_after_kill_s": round(cleaned_s, 1),
        "commit_every_items": 50,
    }


# ------------------------------------------------------------ pipeline (archive-pipeline run) --


def build_decade(inbox: Path, n: int, seed: int = 0) -> float:
    """n distinct media files of 2-10 s in inbox/1980s: speech clips (flac) and short videos
    with an audio track (mp4), cut from ../shared/media at random offsets; their total seconds."""
    import soundfile

    rng = random.Random(seed)
    sources = sorted((SHARED / "speech").glob("*.wav")) + sorted((SHARED / "speech").glob("*.flac"))
    audio = [(p, soundfile.info(p).duration) for p in sources]
    folder = inbox / "1980s"
    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for i in range(n):
        duration = rng.uniform(2, 10)
        src, length = rng.choice(audio)
        offset = rng.uniform(0, max(0.0, length - duration))
        gain = rng.uniform(0.6, 1.0)
        if i % 2 == 0:
            out = folder / f"clip_{i:05d}.flac"
            cmd = ["-ss", f"{offset:.3f}", "-t", f"{duration:.3f}", "-i", str(src)]
            cmd += ["-af", f"volume={gain:.3f}", "-ac", "1", "-ar", "16000", str(out)]
        else:
            out = folder / f"video_{i:05d}.mp4"
            cmd = ["-f", "lavfi", "-i", f"testsrc2=size=192x108:rate=12:duration={duration:.3f}"]
            cmd += ["-ss", f"{offset:.3f}", "-t", f"{duration:.3f}", "-i", str(src)]
            cmd += ["-vf", f"hue=h={rng.uniform(0, 360):.1f}", "-af", f"volume={gain:.3f}"]
            cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
            cmd += ["-c:a", "aac", "-shortest", str(out)]
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *cmd], check=True, timeout=120
        )
        total += duration
    return total


def cheap_env(home: Path, inbox: Path, *, inline: bool = False, cheap: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    env |= {"ARCHIVE_HOME": str(home), "ARCHIVE_INBOX": str(inbox)}
    if cheap:
        env |= {"ARCHIVE_WHISPER_MODEL": "tiny.en", "ARCHIVE_SHOT_DETECTOR": "content"}
    if inline:
        env["ARCHIVE_RAY_ADDRESS"] = "inline"
    return env


def run_pipeline(env: dict, decades: list[str] | None = ("1980s",), *, rerun: bool = False) -> dict:
    """`archive-pipeline run [--decade D] [--rerun]` in a child (every decade with media if
    None; `rerun`: through Dagster even where nothing changed); wall, CPU of the whole process
    tree, peak RSS of the Dagster process and of Ray's workers, the decades' own run seconds
    (summed) and its output."""
    import psutil

    exe = str(Path(sys.executable).parent / "archive-pipeline")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [exe, "run", *(arg for d in decades or () for arg in ("--decade", d))]
        + (["--rerun"] if rerun else []),
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peaks = {"driver": 0.0, "worker": 0.0}
    cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds last seen
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for process in tree:  # Ray's workers are not reaped by us: sample every process
            try:
                times = process.cpu_times()
                cpu[(process.pid, process.create_time())] = times.user + times.system
                rss = process.memory_info().rss / 1024**2
                if process.pid == proc.pid:
                    peaks["driver"] = max(peaks["driver"], rss)
                elif "ray::" in process.name():
                    peaks["worker"] = max(peaks["worker"], rss)
            except psutil.Error:
                continue
        time.sleep(0.2)
    reader.join()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError("".join(lines)[-4000:])
    output = "".join(lines)
    decade_runs = [float(s) for s in re.findall(r"\S+: (?:ok|FAILED) in ([\d.]+) s \(run", output)]
    return {
        "wall_s": round(wall, 2),
        "decade_run_s": round(sum(decade_runs), 2) if decade_runs else None,
        "cpu_s": round(sum(cpu.values()), 2),
        "driver_peak_rss_mb": round(peaks["driver"], 1),
        "worker_peak_rss_mb": round(peaks["worker"], 1),
        "output": output,
    }


ITEM_LINE = re.compile(r"(\S+) 1980s: \d+/\d+ \S+ (?:ok in|FAILED after) (?:(\d+) min )?([\d.]+) s")


def item_seconds(output: str) -> dict[str, float]:
    """Seconds of item work per stage, from the run's progress lines."""
    per_stage: dict[str, float] = {}
    for line in output.splitlines():
        match = ITEM_LINE.search(line)
        if match:
            seconds = float(match.group(3)) + 60 * float(match.group(2) or 0)
            per_stage[match.group(1)] = per_stage.get(match.group(1), 0.0) + seconds
    return per_stage


def _cpu_now() -> float:
    """CPU seconds of this process and of its waited-for children (ffmpeg, ffprobe)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def model_calls_child(home: str, inbox: str, cheap: str) -> None:
    """The job inline in this process (no Ray) over every decade with media, counting the CPU
    spent inside the stages' setup() and process() calls: the bare model work (decode, models,
    features), without Dagster, Lance, the ledger or Ray. Prints one JSON line."""
    os.environ.update(cheap_env(Path(home), Path(inbox), inline=True, cheap=cheap == "cheap"))
    from archive_pipeline.core import compute

    spent: dict[str, float] = {}
    original = compute.InlineCompute.stream

    def counted(self, stage, items, *, durations=None):
        for name in ("setup", "process"):
            method = getattr(stage, name)

            def timed(*args, _method=method, **kw):
                start = _cpu_now()
                try:
                    return _method(*args, **kw)
                finally:
                    spent[stage.name] = spent.get(stage.name, 0.0) + _cpu_now() - start

            setattr(stage, name, timed)
        yield from original(self, stage, items, durations=durations)

    compute.InlineCompute.stream = counted
    from archive_pipeline.ops.runner import planned_decades, run_decades

    start = _cpu_now()
    decades, _ = planned_decades(None)
    runs = run_decades(decades, trigger="benchmark", out=lambda line: None)
    whole = _cpu_now() - start
    assert all(r.success for r in runs), runs
    print(
        json.dumps(
            {
                "model_calls_cpu_s": round(sum(spent.values()), 2),
                "by_stage": {k: round(v, 2) for k, v in spent.items()},
                "inline_run_cpu_s": round(whole, 2),
            }
        ),
        flush=True,
    )


def run_model_calls(home: Path, inbox: Path, *, cheap: bool = True) -> dict:
    mode = "cheap" if cheap else "default"
    cmd = [sys.executable, __file__, "--model-calls-child", str(home), str(inbox), mode]
    env = cheap_env(home, inbox, inline=True, cheap=cheap)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if out.returncode:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def pipeline_part(tmp: Path, sizes: list[int], *, inline: bool = True, quick: bool = False) -> dict:
    """`quick`: the runs' stages in the command's process (no Ray start: a smoke run)."""
    out: dict = {"configuration": "cheap: Whisper tiny.en, PySceneDetect content"}
    for n in sizes:
        inbox = tmp / f"inbox_{n}"
        media_s = build_decade(inbox, n, seed=n)
        home = tmp / f"home_{n}"
        cold = run_pipeline(cheap_env(home, inbox, inline=quick))
        warm = run_pipeline(cheap_env(home, inbox, inline=quick), rerun=True)  # through Dagster
        stages = item_seconds(cold["output"])
        figures = {
            "items": n,
            "media_s": round(media_s, 1),
            "cold_wall_s": cold["wall_s"],
            "s_per_item": round(cold["wall_s"] / n, 2),
            "real_time_factor": round(media_s / cold["wall_s"], 3),
            "cold_cpu_s": cold["cpu_s"],
            "driver_peak_rss_mb": cold["driver_peak_rss_mb"],
            "worker_peak_rss_mb": cold["worker_peak_rss_mb"],
            "item_seconds_by_stage": {k: round(v, 2) for k, v in stages.items()},
            "cold_decade_run_s": cold["decade_run_s"],
            "warm_wall_s": warm["wall_s"],
            "warm_decade_run_s": warm["decade_run_s"],
            "warm_over_cold": round(warm["wall_s"] / cold["wall_s"], 4),
            "warm_started_ray": "Ray: not started" not in warm["output"],
        }
        if n == 1:  # the fixed cost of a decade: everything that is not item work
            figures["fixed_cost"] = {
                "command_wall_s": cold["wall_s"],
                "imports_and_instance_s": round(cold["wall_s"] - cold["decade_run_s"], 2),
                "decade_run_s": cold["decade_run_s"],
                "item_work_s": round(sum(stages.values()), 2),
                "ray_start_workers_models_commits_s": round(
                    cold["decade_run_s"] - sum(stages.values()), 2
                ),
            }
        if inline and n == sizes[-1]:
            baseline = run_pipeline(cheap_env(tmp / f"home_{n}_inline", inbox, inline=True))
            figures["inline_wall_s"] = baseline["wall_s"]
            figures["inline_cpu_s"] = baseline["cpu_s"]
            figures["cpu_over_inline"] = round(cold["cpu_s"] / baseline["cpu_s"], 3)
        if n == sizes[-1]:
            # the same items' stage calls alone (setup + process, inline, counted in-process)
            bare = run_model_calls(tmp / f"home_{n}_calls", inbox)
            figures["model_calls"] = bare
            figures["cpu_over_model_calls"] = round(cold["cpu_s"] / bare["model_calls_cpu_s"], 3)
        out[str(n)] = figures
        print(f"pipeline N={n}: {json.dumps(figures)}", flush=True)
    return out


def demo_part(tmp: Path) -> dict:
    """The demo archive (build_demo_inbox with ../shared/media) with the default models: the
    cold run of every decade, the unchanged re-run, and CPU against the model calls alone."""
    from archive_pipeline.demo.build import build_demo_inbox

    inbox = tmp / "demo_inbox"
    items = build_demo_inbox(inbox, shared_media=SHARED if SHARED.is_dir() else None)
    home = tmp / "demo_home"
    cold = run_pipeline(cheap_env(home, inbox, cheap=False), decades=None)
    warm = run_pipeline(cheap_env(home, inbox, cheap=False), decades=None, rerun=True)
    bare = run_model_calls(tmp / "demo_calls", inbox, cheap=False)
    figures = {
        "configuration": "default models (Whisper base, TransNetV2, RapidOCR, multilingual USE)",
        "items": len(items),
        "cold_wall_s": cold["wall_s"],
        "cold_decades_run_s": cold["decade_run_s"],
        "cold_cpu_s": cold["cpu_s"],
        "driver_peak_rss_mb": cold["driver_peak_rss_mb"],
        "worker_peak_rss_mb": cold["worker_peak_rss_mb"],
        "warm_wall_s": warm["wall_s"],
        "warm_decades_run_s": warm["decade_run_s"],
        "warm_over_cold": round(warm["wall_s"] / cold["wall_s"], 4),
        "warm_started_ray": "Ray: not started" not in warm["output"],
        "model_calls": bare,
        "cpu_over_model_calls": round(cold["cpu_s"] / bare["model_calls_cpu_s"], 3),
    }
    print(f"demo: {json.dumps(figures)}", flush=True)
    return figures


# ------------------------------------------------------------------------------------ main --


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument(
        "--part", choices=["replay", "pipeline", "demo", "integrity", "all"], default="all"
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="integrity part: a checkout of an earlier commit to compare the warm re-run with",
    )
    parser.add_argument("--integrity-n", type=int, default=1000, help="integrity part: items")
    parser.add_argument(
        "--integrity-home",
        type=Path,
        help="integrity part: also time `archive-pipeline run` over this built, unchanged "
        "ARCHIVE_HOME (e.g. the demo's), against --baseline-tree",
    )
    parser.add_argument("--sizes", help="replay decade sizes (default 10,100,1000; quick 5,10)")
    parser.add_argument(
        "--hours", help="replay media hours, half-hour items (default 1,10,40,100; quick 0.5)"
    )
    parser.add_argument("--pipeline-n", type=int, default=100, help="largest pipeline decade")
    parser.add_argument("--pipeline-sizes", help="pipeline decade sizes (default 1,10,N)")
    parser.add_argument(
        "--no-inline", action="store_true", help="skip the inline run of the largest decade"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-path", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--duration-s", type=float, default=6.0, help=argparse.SUPPRESS)
    parser.add_argument("--delay-s", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--calls", help=argparse.SUPPRESS)
    parser.add_argument("--child-runs", help=argparse.SUPPRESS)
    parser.add_argument("--model-calls-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model_calls_child:
        model_calls_child(*args.model_calls_child)
        return
    if args.child:
        child(args)
        return
    sizes = [int(s) for s in (args.sizes or ("5,10" if args.quick else "10,100,1000")).split(",")]
    figures: dict = {"benchmark": "scale", "quick": args.quick}
    tmp = Path(tempfile.mkdtemp(prefix="scale_"))
    try:
        if args.part in ("replay", "all"):
            replay: dict = {"sizes": {}}
            default_hours = "0.5" if args.quick else "1,10,40,100"
            hours = [f"{float(h):g}" for h in (args.hours or default_hours).split(",")]
            done: dict[str, dict] = {}
            if args.quick:  # every replayed decade in one process (one Ray start)
                done = run_replay_children(
                    [(tmp / f"r{n}_0", n, 6.0) for n in sizes]
                    + [(tmp / f"h{h}", int(2 * float(h)), ITEM_H * 3600) for h in hours]
                )

            def replayed(root: Path, n: int, duration_s: float) -> dict:
                return done.get(str(root)) or run_replay_child(root, n, duration_s)

            for n in sizes:  # short items, like the synthetic decade (6 s each)
                runs = [replayed(tmp / f"r{n}_{k}", n, 6.0) for k in range(args.repeats)]
                runs.sort(key=lambda r: r["cold_s"])
                replay["sizes"][str(n)] = runs[len(runs) // 2]
                print(f"replay N={n}: {json.dumps(replay['sizes'][str(n)])}", flush=True)
            small, large = replay["sizes"][str(sizes[-2])], replay["sizes"][str(sizes[-1])]
            replay["driver_rss_ratio_largest_over_previous"] = round(
                large["driver_peak_rss_mb"] / small["driver_peak_rss_mb"], 3
            )
            per_hour = {}
            for h in hours:  # half-hour videos: the decade grows, the items and batches do not
                run = replayed(tmp / f"h{h}", int(2 * float(h)), ITEM_H * 3600)
                per_hour[f"{h}h"] = run
                print(f"replay {h} h of video: {json.dumps(run)}", flush=True)
                shutil.rmtree(tmp / f"h{h}", ignore_errors=True)  # 27 MB of thumbnails per hour
            replay["media_hours"] = per_hour
            first = per_hour[f"{hours[0]}h"]["driver_peak_rss_mb"]
            replay["driver_rss_ratio_by_media_hours"] = {
                f"{h}h_over_{hours[0]}h": round(per_hour[f"{h}h"]["driver_peak_rss_mb"] / first, 3)
                for h in hours[1:]
            }
            if (
                not args.quick and not args.hours
            ):  # the same 100 h in 40 long items: one item's rows at a time
                long_items = run_replay_child(tmp / "long", 40, 100 * 3600 / 40)
                shutil.rmtree(tmp / "long", ignore_errors=True)
                print(f"replay 100 h in 40 items of 2.5 h: {json.dumps(long_items)}", flush=True)
                replay["media_hours_long_items"] = long_items
            replay["kill_9"] = kill_and_resume(tmp, sizes[-1], 6.0)
            print(f"kill -9 and re-run: {json.dumps(replay['kill_9'])}", flush=True)
            figures["replay"] = replay
        if args.part in ("pipeline", "all"):
            sizes_p = [1] if args.quick else sorted({1, 10, args.pipeline_n})
            if args.pipeline_sizes:
                sizes_p = [int(n) for n in args.pipeline_sizes.split(",")]
            inline = not (args.no_inline or args.quick)  # quick: the inline run left out
            figures["pipeline"] = pipeline_part(tmp, sizes_p, inline=inline, quick=args.quick)
        if args.part in ("integrity", "all"):
            n = 10 if args.quick else args.integrity_n
            repeats = max(args.repeats, 1 if args.quick else 3)
            replayed = figures.get("replay", {}).get("sizes", {}).get(str(n))
            figures["integrity"] = integrity_part(
                tmp, n, repeats, args.baseline_tree, done=replayed if args.quick else None
            )
            if args.integrity_home:
                figures["integrity"]["unchanged_archive"] = unchanged_archive_part(
                    args.integrity_home, repeats, args.baseline_tree
                )
        if args.part in ("demo", "all") and not args.quick:
            figures["demo"] = demo_part(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {"repeats": args.repeats, "statistic": "median"}
    print(json.dumps({**figures, **medians}, default=statistics.mean))


if __name__ == "__main__":
    main()
