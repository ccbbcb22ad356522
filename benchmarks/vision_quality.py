"""Vision quality on ../shared/media with real packaged weights, measured by code in the repo.

- shot cuts on video/bikes.mp4 (5 hard cuts) and video/bigbuckbunny-5s.mp4 (none): precision,
  recall and F1 within +-1 frame, for TransNetV2 and PySceneDetect content / adaptive;
- cuts on generated fades and dissolves (archive_pipeline.quality.generated: fade-in at the
  start, fade-out at the end, 1 s and 1.5 s dissolves, fade through black, fade-out then cut,
  cut then fade-out): one cut expected inside each transition, and frames left in no shot;
- cuts on documentary-style transitions (dissolves of 7-60 frames, chained dissolves, bursts of
  2-12-frame shots; a flash, a fast pan and subtitles that are no cut), previous boundary rules
  against current, on the set they were developed on and on two drawn at random, and the false
  cuts (no-cut videos and the shared videos);
- titles found of those shown on generated one-shot videos (quality.generated.title_videos:
  8 titles, 2 s each between keyframes, sizes 22-56 px, some faded), with text-aware sampling
  and without;
- OCR character error rate on ocr/phototest.tif (whitespace collapsed, case kept) and the share of
  video/counter.mp4 frames whose frame number is read exactly, for RapidOCR (default) and, when
  the PaddleOCR environment exists (.venv-paddle, `make install-paddle`), PaddleOCR;
- German: CER on a generated page with umlauts and eszett (RapidOCR, ARCHIVE_OCR_LANGUAGE=de);
- pages, previous OCR against current: CER of the search form and long-s words read as printed
  on the real 1784 Fraktur page and generated Fraktur/Antiqua pages, script and language found;
- phrase queries about page content in vector search: the page as one document (previous)
  against one per passage (current), over newspaper-like generated pages.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUICK = False  # --quick: each part on its first case or two (a smoke run, not a measure)


def _few(cases, n: int = 1) -> list:
    """All cases, or the first n in a --quick run."""
    return list(cases)[:n] if QUICK else list(cases)


_SHOT_MODELS: dict = {}  # TransNetV2 and the text probe, loaded once for the run


def shots_stage(store, **options):
    """A set-up ShotsStage that shares the models loaded once for the run (`loaded_models()`:
    a detector option changes how they are used, not the weights)."""
    from archive_pipeline.stages.shots import ShotsStage

    stage = ShotsStage(store, **{**_SHOT_MODELS, **options})
    stage.setup()
    _SHOT_MODELS.update({k: v for k, v in stage.loaded_models().items() if v is not None})
    return stage


GERMAN = ["Größe der Bürgerstraße", "Äpfel über Öl für 18 Mark", "Schöne Grüße aus Köln"]


def cut_quality(media: Path) -> dict:
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.quality import cuts_match
    from archive_pipeline.stages.base import CatalogItem

    out = {}
    for detector in ("transnetv2", "content", "adaptive"):
        stage = shots_stage(LocalStore(str(media / "video")), detector=detector)
        for name in _few(("bigbuckbunny-5s", "bikes"), 1):
            truth = json.loads((media / f"video/{name}.cuts.json").read_text())["cuts_frames"]
            result = stage.process(CatalogItem(name, f"{name}.mp4", name, name, None))
            found = [shot["start_frame"] for shot in result.shots][1:]
            match = cuts_match(found, truth)
            out[f"{detector}/{name}"] = {k: round(v, 3) for k, v in match.items()}
    return out


def transition_quality(media: Path) -> dict:
    """Cut precision/recall/F1 over the generated fades and dissolves (one cut expected inside
    each transition, none in a fade-in at the start or a fade-out at the end), per detector."""
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.quality import transitions_match
    from archive_pipeline.quality.generated import transition_videos
    from archive_pipeline.stages.base import CatalogItem

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        made = transition_videos(media / "video", Path(tmp), only=1 if QUICK else None)
        for detector in ("transnetv2", "content", "adaptive"):
            stage = shots_stage(LocalStore(tmp), detector=detector)
            found_all, spans_all, offset, uncovered = [], [], 0, 0
            for case in made:
                result = stage.process(
                    CatalogItem(case.name, f"{case.name}.mp4", case.name, "", None)
                )
                covered = sum(s["end_frame"] - s["start_frame"] + 1 for s in result.shots)
                uncovered += result.frames - covered
                # one timeline: each video's frames after the previous one's
                found_all += [offset + s["start_frame"] for s in result.shots[1:]]
                spans_all += [(offset + a, offset + b) for a, b in case.spans]
                offset += result.frames + 1000
            match = transitions_match(found_all, spans_all)
            out[detector] = {
                **{k: round(v, 3) for k, v in match.items()},
                "videos": len(made),
                "frames_in_no_shot": uncovered,
            }
    return out


def documentary_quality(media: Path, seeds=(None, 2028, 7)) -> dict:
    """Cut precision/recall/F1 on documentary-style transitions (quality.generated.
    documentary_videos: dissolves of 7-60 frames, chained dissolves, a burst of 2-12-frame
    shots, and a flash, a fast pan and subtitles that are no cut), TransNetV2 with the previous
    boundary rules against the current, on the set the rules were developed on (seed None) and
    on sets drawn at random they were not (other seeds). `false_cuts`: cuts found in the no-cut
    videos and on the shared videos beyond their truth (bikes: 5 cuts, the bunny: none)."""
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.quality import cuts_match, transitions_match
    from archive_pipeline.quality.generated import documentary_videos
    from archive_pipeline.stages.base import CatalogItem

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            seed: (
                Path(tmp) / str(seed),
                documentary_videos(
                    media / "video", Path(tmp) / str(seed), seed=seed, only=1 if QUICK else None
                ),
            )
            for seed in _few(seeds)
        }
        for label, previous in (("previous", True), ("current", False)):
            stage = shots_stage(LocalStore(tmp), previous_boundaries=previous)
            figures: dict = {}
            false_cuts = 0
            for seed, (root, cases) in sets.items():
                stage.store = LocalStore(str(root))
                found_all, spans_all, offset, dissolves, dissolves_found = [], [], 0, 0, 0
                missed = []
                for case in cases:
                    result = stage.process(
                        CatalogItem(case.name, f"{case.name}.mp4", case.name, "", None)
                    )
                    found = [s["start_frame"] for s in result.shots][1:]
                    match = transitions_match(found, case.spans)
                    if not case.spans:
                        false_cuts += len(found)
                    if case.name.startswith("dissolve"):
                        dissolves += 1
                        dissolves_found += match["hits"]
                    if match["hits"] < len(case.spans) or len(found) > len(case.spans):
                        missed.append(f"{case.name}: found {found} expected {list(case.spans)}")
                    found_all += [offset + f for f in found]
                    spans_all += [(offset + a, offset + b) for a, b in case.spans]
                    offset += result.frames + 1000
                match = transitions_match(found_all, spans_all)
                figures["developed_on" if seed is None else f"held_out_{seed}"] = {
                    **{k: round(v, 3) for k, v in match.items()},
                    "dissolves_found": f"{dissolves_found}/{dissolves}",
                    "wrong": missed,
                }
            stage.store = LocalStore(str(media / "video"))
            for name in _few(("bigbuckbunny-5s", "bikes")):
                truth = json.loads((media / f"video/{name}.cuts.json").read_text())["cuts_frames"]
                result = stage.process(CatalogItem(name, f"{name}.mp4", name, name, None))
                match = cuts_match([s["start_frame"] for s in result.shots][1:], truth)
                false_cuts += match["found"] - match["hits"]
            figures["false_cuts"] = false_cuts
            out[label] = figures
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
            for i, k in enumerate(result.keyframes)
        )
        keyframes += len(refs)
        start = time.perf_counter()
        read = ocr.process(OcrItem(item, refs, video.name))
        ocr_s += time.perf_counter() - start
        text = normalise_text(" ".join(ln.text for f in read.frames for ln in f.lines))
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
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.quality.generated import title_videos
    from archive_pipeline.stages.keyframes import KeyframeSettings
    from archive_pipeline.stages.ocr import FrameTextStage

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        # quick: one 4 s video holding its first title
        videos = title_videos(Path(tmp), **({"only": 1, "duration_s": 4.0} if QUICK else {}))
        ocr = FrameTextStage(LocalStore(tmp))
        ocr.setup()
        for label, every in (("text_sampling", 1.0), ("keyframes_only", 0.0)):
            shots = shots_stage(LocalStore(tmp), keyframes=KeyframeSettings(text_every_s=every))
            out[label] = read_titles(shots, ocr, Path(tmp), videos)
    return out


def ocr_quality(media: Path, backend: str) -> dict:
    import numpy as np
    from PIL import Image

    from archive_pipeline.core.local_store import LocalStore
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
            int(r["frame_index_0based"]): r["expected_text"]
            for r in _few(csv.DictReader(handle), 3)
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

    from archive_pipeline.core.local_store import LocalStore
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


def _read_pages(stage, cases) -> list[dict]:
    """Each case (name, image path, diplomatic truth, script, language) read by a stage: CER of
    the search form against the truth's, long-s words read as printed, script and language."""
    from collections import Counter

    import numpy as np
    from PIL import Image

    from archive_pipeline.core.text import normalise_print
    from archive_pipeline.quality import character_error_rate, long_s_words
    from archive_pipeline.stages.ocr import line_languages

    out = []
    for name, path, truth, script, language in cases:
        lines, found_script = stage.read_page(np.asarray(Image.open(path).convert("RGB")))
        reading = "\n".join(line.text for line in lines)
        normalised = [normalise_print(line.text) for line in lines]
        if stage.settings.fraktur == "off":  # the previous stage labelled lines with the setting
            languages = ["en"] * len(lines)
        else:
            languages = line_languages(normalised, stage.settings.language)
        main = Counter(x for x in languages if x).most_common(1)
        read, total = long_s_words(truth, reading)
        out.append(
            {
                "page": name,
                "script": script,
                "read_as": found_script,
                "cer": round(
                    character_error_rate(normalise_print(truth), "\n".join(normalised)), 4
                ),
                "long_s_read": read,
                "long_s_words": total,
                "language": language,
                "language_read": main[0][0] if main else None,
            }
        )
    return out


def page_quality(media: Path) -> dict:
    """Pages, previous OCR (PP-OCR only, lines labelled with the language setting) against the
    current (historic print read by Tesseract's Fraktur model, language detected): the real
    1784 Fraktur page of ../shared/media/ocr and the generated page set (German in two Fraktur
    fonts and Antiqua, English in Antiqua; quality.generated.printed_pages)."""
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.quality.generated import fraktur_font_dir, printed_pages
    from archive_pipeline.stages.ocr import FrameTextStage, OcrSettings

    fonts = fraktur_font_dir()
    if fonts is None:
        raise SystemExit("the Fraktur fonts are missing: run `make fonts`")
    kant = media / "ocr/kant_1784_p17"
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            (
                "kant_1784_p17 (real)",
                kant.with_suffix(".tif"),
                kant.with_suffix(".gt.txt").read_text(),
                "Fraktur",
                "de",
            )
        ]
        cases += [
            (page.name, path, "\n".join(page.lines), page.script, page.language)
            for path, page in printed_pages(
                Path(tmp), fonts, texts=("de_hafen",) if QUICK else None
            )
        ]
        if QUICK:  # the real page and one generated page of each script
            cases = [cases[0]] + [
                next(c for c in cases[1:] if c[3] == script) for script in ("Fraktur", "Latin")
            ]
        out = {}
        for label, settings in (
            ("previous", OcrSettings(fraktur="off", language="en")),
            ("current", OcrSettings()),
        )[1 if QUICK else 0 :]:  # quick: the current reading alone
            stage = FrameTextStage(LocalStore(tmp), settings=settings)
            stage.setup()
            out[label] = _read_pages(stage, cases)
    return out


def _page_summary(pages: list[dict]) -> dict:
    import statistics

    real = next(p for p in pages if p["page"].endswith("(real)"))
    generated = [p for p in pages if p is not real]
    fraktur = [p for p in generated if p["script"] == "Fraktur"]
    latin = [p for p in generated if p["script"] == "Latin"]
    return {
        "fraktur_cer_real": real["cer"],
        "long_s_words_real": f"{real['long_s_read']}/{real['long_s_words']}",
        "fraktur_cer_generated_median": statistics.median(p["cer"] for p in fraktur),
        "fraktur_cer_generated_max": max(p["cer"] for p in fraktur),
        "long_s_words_generated": (
            f"{sum(p['long_s_read'] for p in fraktur)}/{sum(p['long_s_words'] for p in fraktur)}"
        ),
        "latin_cer_generated_median": statistics.median(p["cer"] for p in latin),
        "latin_cer_generated_max": max(p["cer"] for p in latin),
        "script_right": f"{sum(p['read_as'] == p['script'] for p in pages)}/{len(pages)}",
        "language_right": f"{sum(p['language_read'] == p['language'] for p in pages)}/{len(pages)}",
    }


def passage_recall() -> dict:
    """Phrase queries about page content (quality.generated.PAGE_PHRASES: a few words of each
    paragraph) in vector search over newspaper-like pages (quality.generated.newspaper_pages:
    three paragraphs on different topics a page, German and English) read by the current OCR:
    the page as one document (previous) against one document per passage (current). A query
    is answered when its page is the first hit and over the searcher's relevance floor
    (ARCHIVE_SEARCH_MIN_SIMILARITY: below it a vector-only hit is not shown); recall@5 and MRR
    by page, ignoring the floor."""
    import numpy as np
    from PIL import Image

    from archive_pipeline.config import settings as app_settings
    from archive_pipeline.core.embedders import ClipSettings, TextEmbedder
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.core.text import join_lines, normalise_print, passages
    from archive_pipeline.quality import retrieval_scores
    from archive_pipeline.quality.generated import PAGE_PHRASES, newspaper_pages
    from archive_pipeline.stages.ocr import FrameTextStage

    stage = FrameTextStage(LocalStore("."))
    stage.setup()
    documents: dict[str, list[tuple[str, str]]] = {"previous": [], "current": []}
    page_of: dict[tuple[str, int], str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path, held in _few(newspaper_pages(Path(tmp))):
            page_of |= {paragraph: path.stem for paragraph in held}
            lines, _ = stage.read_page(np.asarray(Image.open(path).convert("RGB")))
            texts = [normalise_print(line.text) for line in lines]
            documents["previous"].append((path.stem, join_lines(texts)))
            for passage in passages(texts, [line.box for line in lines]):
                documents["current"].append((path.stem, passage.text))
    embedder = TextEmbedder(ClipSettings())
    queries = [
        (page_of[(key, i)], phrase)
        for key, phrases in PAGE_PHRASES.items()
        for i, phrase in enumerate(phrases)
        if (key, i) in page_of
    ]
    asked = embedder.embed([q for _, q in queries])
    out = {}
    for label, docs in documents.items():
        vectors = embedder.embed([text for _, text in docs])
        ranks, missed, answered, similarity = [], [], 0, []
        floor = app_settings.SEARCH_MIN_SIMILARITY.default
        for (page, phrase), query in zip(queries, asked, strict=True):
            scores = vectors @ query
            order = np.argsort(-scores)
            pages = list(dict.fromkeys(docs[i][0] for i in order))  # best document per page
            ranks.append(pages.index(page) + 1)
            best = max(float(scores[i]) for i in range(len(docs)) if docs[i][0] == page)
            similarity.append(best)
            if ranks[-1] == 1 and best >= floor:
                answered += 1
            else:
                missed.append(phrase)
        scores = retrieval_scores(ranks, k=5)
        out[label] = {
            "documents": len(docs),
            "queries": len(queries),
            "first_hit": sum(r == 1 for r in ranks),
            "answered": answered,
            "median_similarity": round(float(np.median(similarity)), 3),
            "recall@5": round(scores["recall@5"], 3),
            "mrr": round(scores["mrr"], 3),
            "not_first": missed,
        }
    return out


class _Lap:
    """Prints the seconds each part took (where a run's time goes)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def __call__(self, part: str) -> None:
        now = time.perf_counter()
        print(f"[{part}: {now - self.last:.1f} s]", flush=True)
        self.last = now


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared-media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--ocr-only", choices=["rapidocr", "paddleocr"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: every part on its first case or two, without PaddleOCR (no figures)",
    )
    args = parser.parse_args()
    global QUICK
    QUICK = args.quick
    if args.ocr_only:  # run inside the PaddleOCR environment
        print(json.dumps(ocr_quality(args.shared_media, args.ocr_only)))
        return
    lap = _Lap()
    cuts = cut_quality(args.shared_media)
    lap("cuts")
    for name, match in cuts.items():
        print(
            f"cuts {name:<28} found {match['found']} expected {match['expected']} "
            f"P {match['precision']:.2f} R {match['recall']:.2f} F1 {match['f1']:.2f}"
        )
    transitions = transition_quality(args.shared_media)
    lap("transitions")
    for detector, match in transitions.items():
        print(
            f"cuts {detector:<11} generated fades/dissolves ({match['videos']} videos): found "
            f"{match['found']} expected {match['expected']} P {match['precision']:.2f} "
            f"R {match['recall']:.2f} F1 {match['f1']:.2f}, frames in no shot "
            f"{match['frames_in_no_shot']}"
        )
    documentary = documentary_quality(args.shared_media)
    lap("documentary")
    for label, figures in documentary.items():
        for part, match in figures.items():
            if part == "false_cuts":
                continue
            print(
                f"cuts transnetv2 {label:<8} documentary {part:<14} P {match['precision']:.2f} "
                f"R {match['recall']:.2f} F1 {match['f1']:.2f}  dissolves "
                f"{match['dissolves_found']}  wrong: {match['wrong']}"
            )
        print(
            f"cuts transnetv2 {label:<8} false cuts (no-cut videos, shared videos) "
            f"{figures['false_cuts']}"
        )
    titles = title_quality()
    lap("titles")
    for label, figures in titles.items():
        print(
            f"titles {label:<15} found {figures['found']}/{figures['titles']} "
            f"({figures['found_ignoring_spaces']} ignoring spaces), "
            f"{figures['keyframes_read']} keyframes read; missed {figures['missed']}"
        )
    ocr = {"rapidocr": ocr_quality(args.shared_media, "rapidocr")}
    lap("ocr")
    paddle_python = REPO / ".venv-paddle/bin/python"
    if paddle_python.exists() and not QUICK:
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
    lap("german")
    print(f"ocr rapidocr (de)  generated German page CER {german['german_cer']:.4f}")
    pages = page_quality(args.shared_media)
    lap("pages")
    for label, read in pages.items():
        for page in read:
            print(
                f"page {label:<8} {page['page']:<32} {page['script']:<7} read as "
                f"{page['read_as']:<7} CER {page['cer']:.4f}  long-s words "
                f"{page['long_s_read']}/{page['long_s_words']}  language {page['language_read']}"
            )
    summary = {label: _page_summary(read) for label, read in pages.items()}
    for label, figures in summary.items():
        print(f"pages {label:<8} " + "  ".join(f"{k} {v}" for k, v in figures.items()))
    recall = passage_recall()
    lap("phrases")
    for label, figures in recall.items():
        print(
            f"phrases {label:<8} ({figures['documents']} documents): answered "
            f"{figures['answered']}/{figures['queries']} (first hit {figures['first_hit']}, "
            f"median similarity {figures['median_similarity']})  recall@5 "
            f"{figures['recall@5']:.3f}  MRR {figures['mrr']:.3f}  missed: {figures['not_first']}"
        )
    print(
        json.dumps(
            {
                "benchmark": "vision_quality",
                "cuts": cuts,
                "transitions": transitions,
                "documentary": {
                    label: {
                        part: (
                            {k: v for k, v in match.items() if k != "wrong"}
                            if isinstance(match, dict)
                            else match
                        )
                        for part, match in figures.items()
                    }
                    for label, figures in documentary.items()
                },
                "titles": titles,
                "ocr": ocr,
                "german_cer": german["german_cer"],
                "pages": summary,
                "phrases_vector": {
                    k: {**v, "not_first": len(v["not_first"])} for k, v in recall.items()
                },
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
