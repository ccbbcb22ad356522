"""Benchmark the speech path: the Ray transcripts stage against bare faster-whisper, and more.

In one run, on the real speech of ../shared/media (jfk, LibriVox, AMI) plus a generated dialogue,
same model, threads and options everywhere (beam 5, VAD, word timestamps, int8, --threads):

- bare: `WhisperModel.transcribe` on audio decoded by faster-whisper, files one after another;
- stage_inline: TranscribeStage.process in this process (our decoding, chunking, row building);
- stage_ray: the same stage through RayRuntime.map with one actor (item time, and wall time
  including actor start and model load);
- batched: faster-whisper's BatchedInferencePipeline against sequential, bare;
- diarisation: the resemblyzer backend's real-time factor (the default's is in
  speech_quality.py, beside it);
- long media (--long-minutes, default 30): jfk looped with 4 s pauses into one file, transcribed
  by the stage in a fresh process: peak RSS (VmHWM), and the absolute time of the word "fellow",
  which must fall at the same place in every 15 s loop; Whisper's own repetitions of the phrase
  elsewhere are counted apart; peak RSS of decoding the whole file at once, for contrast.
- long diarisation (--diarise-hours, default 10 min and 3 h): the AMI meeting and jfk looped
  into one 24 kb/s Opus file (a logger tape), diarised by --diarisation-backend (default: the
  default, pyannote with the packaged weights) in a fresh process, which decodes it in 10-min
  blocks: peak RSS (VmHWM), seconds, speakers found; the ratio of the longest's peak RSS to
  the shortest's.

Medians of --repeats; ratios against bare; one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import peak_rss_mb, run_child  # noqa: E402

FILES = [
    "speech/jfk.flac",
    "speech/librivox-0870.wav",
    "speech/librivox-0880.wav",
    "speech/librivox-0890.wav",
    "speakers/ami-tst00.wav",
]
OPTIONS = {"beam_size": 5, "vad_filter": True, "word_timestamps": True}


def duration(path: Path) -> float:
    from archive_pipeline.core.media import probe_file

    return probe_file(path).duration_s


def build_inputs(shared: Path, tmp: Path) -> list[Path]:
    from archive_pipeline_tests.speech_fixtures import dialogue

    files = []
    for rel in FILES:
        shutil.copyfile(shared / rel, tmp / Path(rel).name)
        files.append(tmp / Path(rel).name)
    dialogue(tmp / "dialogue.wav")
    files.append(tmp / "dialogue.wav")
    return files


def run_bare(model, files, *, batched=None, batch_size=8) -> float:
    from faster_whisper import decode_audio

    start = time.perf_counter()
    for path in files:
        audio = decode_audio(str(path))
        if batched is not None:
            segments, _ = batched.transcribe(
                audio, batch_size=batch_size, beam_size=5, word_timestamps=True
            )
        else:
            segments, _ = model.transcribe(audio, **OPTIONS)
        list(segments)
    return time.perf_counter() - start


def child(mode: str, path: Path, threads: int, model: str, backend: str = "pyannote") -> None:
    """Run in a fresh process (clean peak RSS): 'transcribe' with the stage, 'diarise' with the
    diariser of `backend`, or 'decode' whole."""
    if mode == "diarise":
        from archive_pipeline.core.local_store import LocalStore
        from archive_pipeline.stages.base import CatalogItem
        from archive_pipeline.stages.diarisation import DiarizationSettings, DiarizeStage

        stage = DiarizeStage(LocalStore(str(path.parent)), DiarizationSettings(backend=backend))
        stage.setup()
        start = time.perf_counter()
        item = CatalogItem(uri="u", store_key=path.name, media_id="m", sha256="s", duration_s=None)
        turns = stage.process(item).turns
        seconds = time.perf_counter() - start
        speakers = len({t["speaker"] for t in turns})
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "peak_rss_mb": peak_rss_mb(),
                    "turns": len(turns),
                    "speakers": speakers,
                }
            )
        )
        return
    if mode == "decode":
        from faster_whisper import decode_audio

        samples = len(decode_audio(str(path)))
        print(json.dumps({"samples": samples, "peak_rss_mb": peak_rss_mb()}))
        return
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.transcription import TranscribeStage, WhisperSettings

    settings = WhisperSettings(model=model, cpu_threads=threads)
    stage = TranscribeStage(LocalStore(str(path.parent)), settings)
    stage.setup()
    start = time.perf_counter()
    item = CatalogItem(uri="u", store_key=path.name, media_id="m", sha256="s", duration_s=None)
    segments = stage.process(item).segments
    seconds = time.perf_counter() - start
    rows = [[s["start_s"], s["end_s"], s["text"]] for s in segments]
    fellow = [w["start"] for s in segments for w in s["words"] if "fellow" in w["word"].lower()]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "segments": rows,
                "fellow_starts": fellow,
            }
        )
    )


def long_media(shared: Path, tmp: Path, minutes: float, threads: int, model: str) -> dict:
    """Loop jfk (11 s) + 4 s pause into >= `minutes`; transcribe it in a fresh process."""
    period = 15.0
    loops = int(minutes * 60 / period) + 1
    path = tmp / "long.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(shared / "speech/jfk.flac"),
            "-af",
            f"apad=pad_dur=4,aloop=loop={loops - 1}:size=2147483647",
            "-ar",
            "16000",
            "-ac",
            "1",
            str(path),
        ],
        check=True,
    )
    total = duration(path)
    result = run_child(__file__, "transcribe", path, threads=threads, model=model)
    whole = run_child(__file__, "decode", path, threads=threads, model=model)
    # The word "fellow" recurs once per loop at the same phase: its absolute times must too.
    starts = result["fellow_starts"]
    phases = sorted(s % period for s in starts)
    median = phases[len(phases) // 2] if phases else 0.0
    in_phase = [p for p in phases if abs(p - median) <= 0.5]
    drift = max((abs(p - median) for p in in_phase), default=None)
    last = result["segments"][-3:]
    return {
        "long_audio_s": round(total, 1),
        "long_rtf": round(total / result["seconds"], 2),
        "long_peak_rss_mb": round(result["peak_rss_mb"], 1),
        "long_whole_decode_peak_rss_mb": round(whole["peak_rss_mb"], 1),
        "long_fellow_phase_s": round(median, 3),
        "long_loops_found": len(in_phase),
        "long_out_of_phase_words": len(phases) - len(in_phase),
        "long_loops": loops,
        "long_max_start_drift_s": round(drift, 3) if drift is not None else None,
        "long_last_segments": [[round(a, 2), round(b, 2), t[:40]] for a, b, t in last],
    }


def long_diarisation(
    shared: Path, tmp: Path, hours: list[float], threads: int, backend: str
) -> dict:
    """Diarise logger-tape-like recordings of these lengths, each in a fresh process."""
    out = {}
    for h in hours:
        path = tmp / f"logger_{h:g}h.opus"
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-y",
                "-i", str(shared / "speakers/ami-tst00.wav"),
                "-i", str(shared / "speech/jfk.flac"),
                "-filter_complex",
                "[0]aresample=16000,aformat=channel_layouts=mono[a];"
                "[1]aresample=16000,aformat=channel_layouts=mono[b];"
                "[a][b]concat=n=2:v=0:a=1,aloop=loop=-1:size=2000000[out]",
                "-map", "[out]", "-t", str(h * 3600), "-c:a", "libopus", "-b:a", "24k",
                str(path),
            ],
            check=True,
        )  # fmt: skip
        result = run_child(
            __file__, "diarise", path, threads=threads, model="base", diarisation_backend=backend
        )
        path.unlink()
        out[f"{h:g}h"] = {
            "audio_s": round(h * 3600),
            "seconds": round(result["seconds"], 1),
            "rtf": round(h * 3600 / result["seconds"], 1),
            "peak_rss_mb": round(result["peak_rss_mb"], 1),
            "turns": result["turns"],
            "speakers": result["speakers"],
        }
        print(f"diarisation {h:g} h: {json.dumps(out[f'{h:g}h'])}", flush=True)
    first, last = out[f"{hours[0]:g}h"], out[f"{hours[-1]:g}h"]
    return {
        "diarisation_long": out,
        "diarisation_peak_rss_ratio_longest_over_shortest": round(
            last["peak_rss_mb"] / first["peak_rss_mb"], 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=30.0, help="0 skips the long run")
    parser.add_argument("--shared-media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--only-long", action="store_true", help="run only the long-media parts")
    parser.add_argument(
        "--diarise-hours",
        default=f"{10 / 60},3",
        help="lengths of the long diarisation inputs in hours ('' skips)",
    )
    parser.add_argument(
        "--diarisation-backend",
        default="pyannote",
        choices=["pyannote", "resemblyzer"],
        help="the diariser of the long diarisation runs (default: the default backend)",
    )
    parser.add_argument(
        "--child", choices=["transcribe", "diarise", "decode"], help=argparse.SUPPRESS
    )
    parser.add_argument("--child-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny.en, 1 file, 1 repeat, a 15 s long run, an 18 s diarisation by "
        "resemblyzer (its fresh process does not import pyannote.audio: ~10 CPU-s less)",
    )
    args = parser.parse_args()
    if args.quick:
        args.model, args.repeats, args.long_minutes = "tiny.en", 1, 0.25
        args.diarise_hours, args.diarisation_backend = "0.005", "resemblyzer"
    if args.child:
        child(args.child, args.child_path, args.threads, args.model, args.diarisation_backend)
        return
    hours = [float(h) for h in args.diarise_hours.split(",") if h]
    if args.only_long:
        with tempfile.TemporaryDirectory(prefix="bench-speech-long-") as tmp:
            long = (
                long_media(
                    args.shared_media, Path(tmp), args.long_minutes, args.threads, args.model
                )
                if args.long_minutes
                else {}
            )
            if hours:
                long |= long_diarisation(
                    args.shared_media, Path(tmp), hours, args.threads, args.diarisation_backend
                )
        print(
            json.dumps(
                {
                    "benchmark": "speech_long",
                    "model": args.model,
                    "diarisation_backend": args.diarisation_backend,
                    **long,
                }
            )
        )
        return

    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from archive_pipeline.config.models import resolve_whisper
    from archive_pipeline.core.compute import StageResources
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.core.ray_runtime import RayRuntime
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.diarisation import DiarizationSettings, DiarizeStage
    from archive_pipeline.stages.transcription import TranscribeStage, WhisperSettings

    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp_name:
        tmp = Path(tmp_name)
        files = build_inputs(args.shared_media, tmp)[: 1 if args.quick else None]
        audio_s = sum(duration(f) for f in files)
        print(
            f"{len(files)} files, {audio_s:.1f} s of audio; model {args.model}, "
            f"{args.threads} threads, median of {args.repeats}"
        )
        path, model_id = resolve_whisper(args.model, tmp / "models")
        model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=args.threads)
        batched = BatchedInferencePipeline(model)
        store = LocalStore(str(tmp))
        items = [
            CatalogItem(
                uri=f.name, store_key=f.name, media_id=f.name, sha256=f.name, duration_s=duration(f)
            )
            for f in files
        ]
        settings = WhisperSettings(model=args.model, cpu_threads=args.threads)
        stage = TranscribeStage(
            store,
            settings,
            model_cache=str(tmp / "models"),
            resources=StageResources(num_cpus=args.threads, max_actors=1),
        )
        stage.setup()
        diarizer = DiarizeStage(store, DiarizationSettings(backend="resemblyzer"))
        diarizer.setup()
        runtime = RayRuntime("local", num_cpus=args.threads)
        runtime.ensure_started()
        times = {
            k: []
            for k in (
                "bare",
                "stage_inline",
                "stage_ray_items",
                "stage_ray_wall",
                "bare_batched",
                "diarisation",
            )
        }
        try:
            for _ in range(args.repeats):
                times["bare"].append(run_bare(model, files))
                start = time.perf_counter()
                for it in items:
                    stage.process(it)
                times["stage_inline"].append(time.perf_counter() - start)
                start = time.perf_counter()
                outcomes = runtime.map(stage, items)
                times["stage_ray_wall"].append(time.perf_counter() - start)
                assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
                times["stage_ray_items"].append(sum(o.seconds for o in outcomes))
                times["bare_batched"].append(run_bare(model, files, batched=batched))
                start = time.perf_counter()
                for it in items:
                    diarizer.process(it)
                times["diarisation"].append(time.perf_counter() - start)
        finally:
            runtime.shutdown()
        long = (
            long_media(args.shared_media, tmp, args.long_minutes, args.threads, args.model)
            if args.long_minutes
            else {}
        )
        if args.quick and hours:
            long |= long_diarisation(
                args.shared_media, tmp, hours, args.threads, args.diarisation_backend
            )

    med = {k: statistics.median(v) for k, v in times.items()}
    bare = med["bare"]
    print(f"\n{'path':<17}{'median s':>10}{'RTF (x real time)':>19}{'vs bare':>10}")
    for name, seconds in med.items():
        print(f"{name:<17}{seconds:>10.2f}{audio_s / seconds:>19.1f}{seconds / bare:>9.2f}x")
    overhead = med["stage_ray_items"] / bare - 1
    print(
        f"\nRay stage overhead per item vs bare transcribe: {overhead:+.1%} (target <= +10%); "
        f"wall time including actor start and model load: {med['stage_ray_wall'] / bare - 1:+.1%}"
    )
    print(f"batched vs sequential (bare): {bare / med['bare_batched']:.2f}x")
    if long:
        print(
            f"long media: {long['long_audio_s'] / 60:.1f} min at {long['long_rtf']}x real time, "
            f"peak RSS {long['long_peak_rss_mb']} MB (whole-file decode alone: "
            f"{long['long_whole_decode_peak_rss_mb']} MB); "
            f"'fellow' at its place in {long['long_loops_found']}/{long['long_loops']} loops "
            f"(phase varies by at most {long['long_max_start_drift_s']} s), "
            f"{long['long_out_of_phase_words']} repeated elsewhere by Whisper; "
            "last segments "
            f"{long['long_last_segments']}"
        )
    result = {
        "benchmark": "speech",
        "model": model_id,
        "threads": args.threads,
        "files": len(files),
        "audio_s": round(audio_s, 2),
        "repeats": args.repeats,
        **{f"{k}_s": round(v, 3) for k, v in med.items()},
        **{f"{k}_rtf": round(audio_s / v, 2) for k, v in med.items()},
        "ray_stage_overhead": round(overhead, 4),
        "ray_stage_wall_overhead": round(med["stage_ray_wall"] / bare - 1, 4),
        "batched_speedup": round(bare / med["bare_batched"], 3),
        **long,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
