"""Vision quality on ../shared/media with real packaged weights, measured by code in the repo.

- shot cuts on video/bikes.mp4 (5 hard cuts) and video/bigbuckbunny-5s.mp4 (none): precision,
  recall and F1 within +-1 frame, for TransNetV2 and PySceneDetect content / adaptive;
- cuts on generated fades and dissolves (archive_pipeline.quality.generated: fade-in at the
  start, fade-out at the end, 1 s and 1.5 s dissolves, fade through black, fade-out then cut,
  cut then fade-out): one cut expected inside each transition, and frames left in no shot;
- titles found of those shown on generated one-shot videos (quality.generated.title_videos:
  8 titles, 2 s each between keyframes, sizes 22-56 px, some faded), with text-aware sampling
  and without;
- OCR character error rate on ocr/phototest.tif (whitespace collapsed, case kept) and the share of
  video/counter.mp4 frames whose frame number is read exactly, for RapidOCR (default) and, when
  the PaddleOCR environment exists (.venv-paddle, `make install-paddle`), PaddleOCR;
- German: CER on a generated page with umlauts and eszett (RapidOCR, ARCHIVE_OCR_LANGUAGE=de).
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GERMAN = ["Größe der Bürgerstraße", "Äpfel über Öl für 18 Mark", "Schöne Grüße aus Köln"]


def cut_quality(media: Path) -> dict:
    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.quality import cuts_match
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.shots import ShotsStage

    out = {}
    for detector in ("transnetv2", "content", "adaptive"):
        stage = ShotsStage(LocalStore(str(media / "video")), detector=detector)
        stage.setup()
        for name in ("bikes", "bigbuckbunny-5s"):
            truth = json.loads((media / f"video/{name}.cuts.json").read_text())["cuts_frames"]
            result = stage.process(CatalogItem(name, f"{name}.mp4", name, name, None))
            found = [shot["start_frame"] for shot in result["shots"]][1:]
            match = cuts_match(found, truth)
            out[f"{detector}/{name}"] = {k: round(v, 3) for k, v in match.items()}
    return out


def transition_quality(media: Path) -> dict:
    """Cut precision/recall/F1 over the generated fades and dissolves (one cut expected inside
    each transition, none in a fade-in at the start or a fade-out at the end), per detector."""
    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.quality import transitions_match
    from archive_pipeline.quality.generated import transition_videos
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.shots import ShotsStage

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        made = transition_videos(media / "video", Path(tmp))
        for detector in ("transnetv2", "content", "adaptive"):
            stage = ShotsStage(LocalStore(tmp), detector=detector)
            stage.setup()
            found_all, spans_all, offset, uncovered = [], [], 0, 0
            for case in made:
                result = stage.process(
                    CatalogItem(case.name, f"{case.name}.mp4", case.name, "", None)
                )
                covered = sum(s["end_frame"] - s["start_frame"] + 1 for s in result["shots"])
                uncovered += result["frames"] - covered
                # one timeline: each video's frames after the previous one's
                found_all += [offset + s["start_frame"] for s in result["shots"][1:]]
                spans_all += [(offset + a, offset + b) for a, b in case.spans]
                offset += result["frames"] + 1000
            match = transitions_match(found_all, spans_all)
            out[detector] = {
                **{k: round(v, 3) for k, v in match.items()},
                "videos": len(made),
                "frames_in_no_shot": uncovered,
            }
    return out


def read_titles(shots, ocr, root: Path, videos) -> dict:
    """Run shots+keyframes then OCR over the generated title videos in `root`: titles found
    (all words in order; also ignoring spaces, for OCR that runs words together), keyframes
    read and seconds per stage."""
    import time

    from archive_pipeline.quality import normalise_text
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.ocr import KeyframeRef, OcrItem

    found = found_squashed = titles = keyframes = 0
    shots_s = ocr_s = 0.0
    missed = []
    for video in videos:
        item = CatalogItem(video.name, f"{video.name}.mp4", video.name, video.name, None)
        start = time.perf_counter()
        result = shots.process(item)
        shots_s += time.perf_counter() - start
        refs = tuple(
            KeyframeRef(str(i), i, k["shot_index"], k["time_s"], k["frame_index"])
            for i, k in enumerate(result["keyframes"])
        )
        keyframes += len(refs)
        start = time.perf_counter()
        read = ocr.process(OcrItem(item, refs, video.name))
        ocr_s += time.perf_counter() - start
        text = normalise_text(" ".join(ln.text for f in read["frames"] for ln in f["lines"]))
        for title in video.titles:
            titles += 1
            wanted = normalise_text(title.text)
            found += f" {wanted} " in f" {text} "
            found_squashed += wanted.replace(" ", "") in text.replace(" ", "")
            if f" {wanted} " not in f" {text} ":
                missed.append(title.text)
    return {
        "titles": titles,
        "found": found,
        "found_ignoring_spaces": found_squashed,
        "missed": missed,
        "keyframes_read": keyframes,
        "shots_s": round(shots_s, 2),
        "ocr_s": round(ocr_s, 2),
    }


def title_quality() -> dict:
    """Titles found of those shown (generated set: 8 titles on 4 one-shot videos, shown 2 s
    between keyframes), with text-aware sampling (default) and without."""
    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.quality.generated import title_videos
    from archive_pipeline.stages.keyframes import KeyframeSettings
    from archive_pipeline.stages.ocr import FrameTextStage
    from archive_pipeline.stages.shots import ShotsStage

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        videos = title_videos(Path(tmp))
        ocr = FrameTextStage(LocalStore(tmp))
        ocr.setup()
        for label, every in (("text_sampling", 1.0), ("keyframes_only", 0.0)):
            shots = ShotsStage(LocalStore(tmp), keyframes=KeyframeSettings(text_every_s=every))
            shots.setup()
            out[label] = read_titles(shots, ocr, Path(tmp), videos)
    return out


def ocr_quality(media: Path, backend: str) -> dict:
    import numpy as np
    from PIL import Image

    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.core.video import frames_at
    from archive_pipeline.quality import character_error_rate
    from archive_pipeline.stages.ocr import FrameTextStage, OcrSettings

    stage = FrameTextStage(LocalStore(str(media)), settings=OcrSettings(backend=backend))
    stage.setup()
    page = np.asarray(Image.open(media / "ocr/phototest.tif").convert("RGB"))
    text = "\n".join(line.text for line in stage.read(page))
    cer = character_error_rate((media / "ocr/phototest.txt").read_text(), text)
    with open(media / "video/counter.expected_text.csv") as handle:
        expected = {
            int(r["frame_index_0based"]): r["expected_text"] for r in csv.DictReader(handle)
        }
    frames = dict(frames_at(media / "video/counter.mp4", [i / 10 for i in expected]))
    correct = 0
    for index, truth in expected.items():
        read = " ".join(line.text for line in stage.read(frames[index / 10]))
        number = re.search(r"Frame\s*=\s*(\d+)", read)
        correct += bool(number) and number.group(1) == re.search(r"= (\d+)", truth).group(1)
    return {
        "model": stage.model_id,
        "phototest_cer": round(cer, 4),
        "counter_frames_read": correct,
        "counter_frames": len(expected),
        "counter_accuracy": round(correct / len(expected), 3),
    }


def german_quality() -> dict:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from archive_pipeline.core.store import LocalStore
    from archive_pipeline.quality import character_error_rate
    from archive_pipeline.stages.ocr import FrameTextStage, OcrSettings

    image = Image.new("RGB", (1000, 80 + 90 * len(GERMAN)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
    for i, line in enumerate(GERMAN):
        draw.text((30, 40 + 90 * i), line, fill="black", font=font)
    stage = FrameTextStage(LocalStore("."), settings=OcrSettings(language="de"))
    stage.setup()
    read = "\n".join(line.text for line in stage.read(np.asarray(image)))
    return {"german_cer": round(character_error_rate("\n".join(GERMAN), read), 4), "read": read}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared-media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--ocr-only", choices=["rapidocr", "paddleocr"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ocr_only:  # run inside the PaddleOCR environment
        print(json.dumps(ocr_quality(args.shared_media, args.ocr_only)))
        return
    cuts = cut_quality(args.shared_media)
    for name, match in cuts.items():
        print(
            f"cuts {name:<28} found {match['found']} expected {match['expected']} "
            f"P {match['precision']:.2f} R {match['recall']:.2f} F1 {match['f1']:.2f}"
        )
    transitions = transition_quality(args.shared_media)
    for detector, match in transitions.items():
        print(
            f"cuts {detector:<11} generated fades/dissolves ({match['videos']} videos): found "
            f"{match['found']} expected {match['expected']} P {match['precision']:.2f} "
            f"R {match['recall']:.2f} F1 {match['f1']:.2f}, frames in no shot "
            f"{match['frames_in_no_shot']}"
        )
    titles = title_quality()
    for label, figures in titles.items():
        print(
            f"titles {label:<15} found {figures['found']}/{figures['titles']} "
            f"({figures['found_ignoring_spaces']} ignoring spaces), "
            f"{figures['keyframes_read']} keyframes read; missed {figures['missed']}"
        )
    ocr = {"rapidocr": ocr_quality(args.shared_media, "rapidocr")}
    paddle_python = REPO / ".venv-paddle/bin/python"
    if paddle_python.exists():
        with tempfile.TemporaryDirectory():
            out = subprocess.run(
                [str(paddle_python), __file__, "--ocr-only", "paddleocr"],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
        ocr["paddleocr"] = json.loads(out.stdout.strip().splitlines()[-1])
    else:
        print("PaddleOCR: not measured (no .venv-paddle; `make install-paddle`)")
    for backend, figures in ocr.items():
        print(
            f"ocr {backend:<10} phototest CER {figures['phototest_cer']:.4f}  counter.mp4 "
            f"{figures['counter_frames_read']}/{figures['counter_frames']} frames read  "
            f"({figures['model']})"
        )
    german = german_quality()
    print(f"ocr rapidocr (de)  generated German page CER {german['german_cer']:.4f}")
    print(
        json.dumps(
            {
                "benchmark": "vision_quality",
                "cuts": cuts,
                "transitions": transitions,
                "titles": titles,
                "ocr": ocr,
                "german_cer": german["german_cer"],
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
