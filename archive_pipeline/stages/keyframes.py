"""Keyframe selection, all of it: candidates, per-shot choice, text-aware sampling (with its
quick RapidOCR probe), near-duplicates, thumbnails and the keyframes row values (Dagster-free).
The shots stage (`stages/shots.py`) decodes each video once and drives both shot boundaries
(`stages/shot_boundaries.py`) and this module from that one pass.

Shot boundaries arrive a little after the frames they concern (TransNetV2 decides a frame ~75
frames later, PySceneDetect a few frames later), so candidates wait in a small queue until their
frame is decided, then join their shot. Candidates are taken on a time grid and, with
TransNetV2, also at frames whose 48x27 image jumps (a hard cut's first frame), so even a shot
shorter than the grid step has one; a shot still without any gets its middle frame by seeking.
A shot is cut into `interval_s` segments; each segment keeps the candidate nearest its middle, so
a shot gets at least one keyframe and a long shot one per interval, while only the current
segment's candidates are held in memory. Near-duplicates (perceptual hash within
`dedup_distance` bits of a keyframe kept earlier in the same video, and at most 1% of pixels
changed) are dropped and recorded on the keyframe that replaces them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archive_pipeline.config import settings as app_settings
from archive_pipeline.core.ids import row_id


@dataclass(frozen=True)
class KeyframeSettings:
    """How keyframes are chosen and stored."""

    interval_s: float = 10.0  # one per this much of a shot
    candidate_every_s: float = 0.5  # candidate grid (decoded at thumbnail size)
    candidate_on_change: float | None = 30.0  # also where the 48x27 frame changes this much
    # pHash Hamming distance (of 64 bits) counted as a duplicate; -1: off
    dedup_distance: int = 6
    thumbnail_width: int = 320  # px: what the search page and the image embeddings read
    thumbnail_format: str = "jpeg"  # jpeg or webp
    thumbnail_quality: int = 80
    full_frames: bool = False  # also the full-size frame
    # text-aware sampling: probe a frame for text this often (0: off), at this width
    text_every_s: float = 1.0
    text_probe_width: int = 640  # px: the text detector's input (titles stay legible)

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Any] | None = None) -> KeyframeSettings:
        """The settings now (ARCHIVE_KEYFRAME_OPTIONS), `vision_models` overrides first."""
        v = app_settings.resolve("vision_models", overrides)
        return cls(**app_settings.options(app_settings.KEYFRAME_OPTIONS, v.keyframe_options, cls))

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.candidate_every_s <= 0:
            raise ValueError("keyframe interval and candidate step must be positive")
        if self.text_every_s < 0 or self.text_probe_width < 32:
            raise ValueError(
                "ARCHIVE_KEYFRAME_OPTIONS: text_every_s must be >= 0, text_probe_width >= 32"
            )
        if self.thumbnail_format not in ("jpeg", "webp"):
            raise ValueError("ARCHIVE_KEYFRAME_OPTIONS: thumbnail_format must be jpeg or webp")

    @property
    def params(self) -> dict:
        """The settings as cache parameters."""
        return {
            "interval_s": self.interval_s,
            "candidate_every_s": self.candidate_every_s,
            "candidate_on_change": self.candidate_on_change,
            "dedup_distance": self.dedup_distance,
            "thumbnail": [self.thumbnail_width, self.thumbnail_format, self.thumbnail_quality],
            "full_frames": self.full_frames,
            "text": [self.text_every_s, self.text_probe_width] if self.text_every_s else None,
        }


@dataclass
class Candidate:
    """A frame that may become a keyframe (its thumbnail-size image, full frame if wanted)."""

    index: int
    time_s: float
    image: np.ndarray
    full: np.ndarray | None = None


@dataclass
class Keyframe:
    """A chosen keyframe: where it is and what it replaced."""

    shot: int
    index: int
    time_s: float
    image: np.ndarray
    full: np.ndarray | None = None
    phash: str = ""
    replaces: list[dict] = field(default_factory=list)
    reason: str = "shot"  # 'shot', 'text' (text-aware sampling) or 'page' (a still's page)


class KeyframeSelector:
    """Per-shot, per-interval selection of candidates, holding one segment at a time."""

    def __init__(self, settings: KeyframeSettings) -> None:
        self.settings = settings
        self.chosen: list[Keyframe] = []
        self._shot: int | None = None
        self._shot_start = 0.0
        self._segment = 0
        self._buffer: list[Candidate] = []
        self._shots_with_keyframes: set[int] = set()

    def add(self, candidate: Candidate, shot: int, shot_start_s: float) -> None:
        """A decided candidate of `shot` (shots and candidates arrive in order)."""
        if shot != self._shot:
            self._flush(end_s=None)
            self._shot, self._shot_start, self._segment = shot, shot_start_s, 0
        segment = int((candidate.time_s - self._shot_start) / self.settings.interval_s)
        if segment != self._segment:
            self._flush(end_s=None)
            self._segment = segment
        self._buffer.append(candidate)

    def end_shot(self, shot: int, end_s: float) -> None:
        """The shot is over (its last frame ends at `end_s`)."""
        if shot == self._shot:
            self._flush(end_s=end_s)
            self._shot = None

    def missing(self, shots: list[tuple[int, int]]) -> list[int]:
        """Shots that got no keyframe (shorter than the candidate step): decode them later."""
        return [i for i in range(len(shots)) if i not in self._shots_with_keyframes]

    def take(self, keyframe: Keyframe) -> None:
        """Add a keyframe decoded separately (see `missing`)."""
        self.chosen.append(keyframe)
        self._shots_with_keyframes.add(keyframe.shot)

    def _flush(self, end_s: float | None) -> None:
        if not self._buffer or self._shot is None:
            self._buffer = []
            return
        interval = self.settings.interval_s
        seg_start = self._shot_start + self._segment * interval
        seg_end = seg_start + interval if end_s is None else min(seg_start + interval, end_s)
        # a short tail of a long shot adds nothing the previous keyframe does not show
        if self._segment > 0 and end_s is not None and seg_end - seg_start < interval / 2:
            self._buffer = []
            return
        middle = (seg_start + seg_end) / 2
        best = min(self._buffer, key=lambda c: abs(c.time_s - middle))
        self.chosen.append(Keyframe(self._shot, best.index, best.time_s, best.image, best.full))
        self._shots_with_keyframes.add(self._shot)
        self._buffer = []


TEXT_SAME_OVERLAP = 0.5  # text boxes of two probes overlapping this much (IoU) ...
TEXT_SAME_READING = 0.8  # ... and their quick readings this similar (difflib ratio): same text
TEXT_GRID = 8  # probe pixels per cell of the text-box mask


@dataclass
class TextFrame:
    """A probed frame chosen for its text (text-aware sampling), with the span of probes that
    showed the same text."""

    index: int
    time_s: float
    image: np.ndarray  # the probe image (upright RGB, probe width)
    full: np.ndarray | None
    first_s: float
    last_s: float


class TextSampler:
    """Text-aware sampling between keyframes: a text reader looks at a probe frame every
    `text_every_s`; consecutive probes with the same text (boxes overlapping, quick readings
    alike: a moving background behind a fixed title does not count) are one text state, and
    each state with text yields one frame: its second probe, once a fading title is fully on
    screen (its only probe if it has one). `finish` drops the states a shot keyframe already
    shows (one taken while the state lasted), so identical text is read once. Holds one
    state's frame at a time, plus the chosen frames (probe-size images) until the video ends.
    """

    def __init__(self, detect, every_s: float) -> None:
        self.detect = detect  # RGB image -> [((4, 2) points, text)] of the lines on it
        self.every_s = every_s
        self.frames: list[TextFrame] = []
        self._previous: tuple[np.ndarray, str] | None = None  # (box mask, reading)
        self._state: TextFrame | None = None
        self._probes = 0
        self.probed = 0

    def add(self, index: int, time_s: float, image: np.ndarray, full=None) -> None:
        """One probe frame (in time order)."""
        self.probed += 1
        lines = self.detect(image)
        height, width = image.shape[:2]
        mask = np.zeros((max(1, height // TEXT_GRID), max(1, width // TEXT_GRID)), bool)
        for box, _ in lines:
            points = np.asarray(box, dtype=np.float32).reshape(-1, 2) / TEXT_GRID
            x0, y0 = np.floor(points.min(axis=0)).astype(int)
            x1, y1 = np.ceil(points.max(axis=0)).astype(int)
            mask[max(y0, 0) : max(y1, 0) + 1, max(x0, 0) : max(x1, 0) + 1] = True
        reading = " ".join(text for _, text in lines)
        same = self._previous is not None and _same_text(self._previous, (mask, reading))
        self._previous = (mask, reading)
        if not mask.any():
            self._close()
            return
        if same and self._state is not None:
            self._probes += 1
            self._state.last_s = time_s
            if self._probes == 2:  # the second probe: a title fading in is fully there
                self._state.index, self._state.time_s = index, time_s
                self._state.image, self._state.full = image, full
            return
        self._close()
        self._state = TextFrame(index, time_s, image, full, time_s, time_s)
        self._probes = 1

    def _close(self) -> None:
        if self._state is not None:
            self.frames.append(self._state)
        self._state = None
        self._probes = 0

    def finish(self, keyframe_times: list[float]) -> list[TextFrame]:
        """The text frames no keyframe (at `keyframe_times`) already shows: none between the
        first and last probe that saw the text."""
        self._close()
        times = np.sort(np.asarray(keyframe_times, dtype=np.float64))
        kept = []
        for frame in self.frames:
            lo, hi = np.searchsorted(times, [frame.first_s - 1e-6, frame.last_s + 1e-6])
            if hi <= lo:
                kept.append(frame)
        return kept


def _same_text(a: tuple[np.ndarray, str], b: tuple[np.ndarray, str]) -> bool:
    import difflib

    (mask_a, text_a), (mask_b, text_b) = a, b
    if mask_a.shape != mask_b.shape:
        return False
    union = mask_a | mask_b
    if not union.any():
        return True
    if (mask_a & mask_b).sum() / union.sum() < TEXT_SAME_OVERLAP:
        return False
    return difflib.SequenceMatcher(None, text_a, text_b).ratio() >= TEXT_SAME_READING


def phash(image: np.ndarray) -> np.ndarray:
    """64-bit perceptual hash (DCT of a 32x32 grey image, imagehash.phash) as a bool array."""
    import imagehash
    from PIL import Image

    return imagehash.phash(Image.fromarray(image)).hash.flatten()


MAX_CHANGED_FRACTION = 0.01  # a near-duplicate also differs in at most 1% of its pixels
CHANGED_LEVEL = 40  # grey levels (of 255) for a pixel to count as changed


def _grey(image: np.ndarray, width: int = 160) -> np.ndarray:
    from PIL import Image

    grey = Image.fromarray(image).convert("L")
    height = max(1, round(grey.height * width / grey.width))
    return np.asarray(grey.resize((width, height), Image.Resampling.BOX), dtype=np.int16)


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels (grey, 160 px wide) that differ by more than CHANGED_LEVEL."""
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a - b) > CHANGED_LEVEL).mean())


def deduplicate(keyframes: list[Keyframe], distance: int) -> tuple[list[Keyframe], int]:
    """Drop keyframes that repeat one kept earlier in the video: pHash within `distance` bits
    and at most 1% of pixels changed. pHash alone cannot tell flat frames apart (two title cards
    with different captions hash alike), and OCR needs every caption, hence the pixel check. The
    kept keyframe records what it replaced. Returns (kept, number removed); distance < 0: keep
    all."""
    kept: list[Keyframe] = []
    hashes: list[np.ndarray] = []
    greys: list[np.ndarray] = []
    removed = 0
    for keyframe in sorted(keyframes, key=lambda k: k.index):
        bits = phash(keyframe.image)
        keyframe.phash = np.packbits(bits).tobytes().hex()
        grey = _grey(keyframe.image)
        match = None
        if distance >= 0 and hashes:
            distances = np.count_nonzero(np.stack(hashes) != bits, axis=1)
            for candidate in np.argsort(distances, kind="stable"):
                if distances[candidate] > distance:
                    break
                changed = changed_fraction(greys[candidate], grey)
                if changed <= MAX_CHANGED_FRACTION:
                    match = int(candidate)
                    break
        if match is None:
            kept.append(keyframe)
            hashes.append(bits)
            greys.append(grey)
            continue
        kept[match].replaces.append(
            {
                "shot_index": keyframe.shot,
                "frame_index": keyframe.index,
                "time_s": keyframe.time_s,
                "hash_distance": int(distances[match]),
                "changed_fraction": changed,
            }
        )
        removed += 1
    return kept, removed


def encode_image(image: np.ndarray, *, fmt: str, quality: int) -> bytes:
    """JPEG or WebP bytes of an RGB image."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format=fmt.upper(), quality=quality)
    return out.getvalue()


def text_detector_id() -> str:
    """Id of the text detector used for text-aware sampling."""
    from importlib.metadata import version

    return f"rapidocr/{version('rapidocr')}/PP-OCRv6-probe"


PROBE_MIN_CONFIDENCE = 0.6  # probe lines read less surely are noise, not text


def text_detector(probe_width: int, *, threads: int = 1, device: str = "cpu"):
    """RapidOCR (the PP-OCRv6 det/rec models in its wheel) run at the probe's own size: a
    function of an RGB image giving its lines as ((4, 2) points, text). The quick reading
    only tells whether the text changed; frame_text reads the chosen frames at full size."""
    from rapidocr import RapidOCR

    engine = RapidOCR(
        params={
            "Global.log_level": "error",
            "Det.limit_type": "max",
            "Det.limit_side_len": probe_width,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            "EngineConfig.onnxruntime.use_cuda": device.startswith("cuda"),
        }
    )

    def detect(image: np.ndarray) -> list[tuple[np.ndarray, str]]:
        result = engine(image, use_det=True, use_cls=False, use_rec=True)
        if result.boxes is None or result.txts is None:
            return []
        return [
            (box, text)
            for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
            if text.strip() and score >= PROBE_MIN_CONFIDENCE
        ]

    return detect


def thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    """An RGB image scaled to `width` (never up), keeping its aspect ratio."""
    from PIL import Image

    height, full_width = image.shape[:2]
    if full_width <= width:
        return image
    size = (width, max(2, round(height * width / full_width / 2) * 2))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def text_keyframes(
    frames: list[TextFrame], scenes: list[tuple[int, int]], settings: KeyframeSettings
) -> list[Keyframe]:
    """Keyframes (reason 'text') of the text frames, in the shots that hold them."""
    import bisect

    starts = [a for a, _ in scenes]
    keyframes = [
        Keyframe(
            max(0, bisect.bisect_right(starts, frame.index) - 1),
            frame.index,
            frame.time_s,
            thumbnail(frame.image, settings.thumbnail_width),
            frame.full if settings.full_frames else None,
            reason="text",
        )
        for frame in frames
    ]
    deduplicate(keyframes, -1)  # pHashes only: the text differs
    return keyframes


def fill_missing(
    path, selector: KeyframeSelector, scenes, times: list[float], end_of, settings: KeyframeSettings
) -> None:
    """Shots shorter than the candidate step: decode their middle frame by seeking."""
    from archive_pipeline.core.video import frames_at

    missing = selector.missing(scenes)
    if not missing:
        return
    middles = {i: (times[scenes[i][0]] + end_of(scenes[i][1])) / 2 for i in missing}
    images = dict(frames_at(path, list(middles.values())))
    for shot, middle in middles.items():
        if middle not in images:
            continue
        a, b = scenes[shot]
        index = min(range(a, b + 1), key=lambda i: abs(times[i] - middle))
        full = images[middle]
        selector.take(
            Keyframe(
                shot,
                index,
                times[index],
                thumbnail(full, settings.thumbnail_width),
                full if settings.full_frames else None,
            )
        )


def keyframe_value(keyframe: Keyframe, settings: KeyframeSettings) -> dict[str, Any]:
    """A keyframe as the values of its keyframes row (images encoded)."""
    height, width = keyframe.image.shape[:2]
    return {
        "shot_index": keyframe.shot,
        "frame_index": keyframe.index,
        "time_s": keyframe.time_s,
        "phash": keyframe.phash,
        "thumbnail": encode_image(
            keyframe.image, fmt=settings.thumbnail_format, quality=settings.thumbnail_quality
        ),
        "thumbnail_format": settings.thumbnail_format,
        "thumbnail_width": width,
        "thumbnail_height": height,
        "full_frame": None
        if keyframe.full is None
        else encode_image(keyframe.full, fmt="jpeg", quality=90),
        "replaces": keyframe.replaces,
        "reason": keyframe.reason,
    }


def keyframe_id(decade: str, media_id: str, frame_index: int) -> str:
    """Row id of a keyframe (stable for the same frame of the same content)."""
    return row_id("keyframes", decade, media_id, str(frame_index))
