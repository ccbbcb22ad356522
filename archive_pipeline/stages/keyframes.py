"""Keyframe selection, streamed alongside shot detection (Dagster-free, no model).

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
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class KeyframeSettings:
    """How keyframes are chosen and stored."""

    interval_s: float = 10.0  # one keyframe per this much of a long shot
    candidate_every_s: float = 0.5  # candidate grid (decoded at thumbnail size)
    candidate_on_change: float | None = 30.0  # also where the 48x27 frame changes this much
    dedup_distance: int = 6  # pHash Hamming distance (of 64 bits) counted as a duplicate; -1: off
    thumbnail_width: int = 320
    thumbnail_format: str = "jpeg"  # jpeg or webp
    thumbnail_quality: int = 80
    full_frames: bool = False  # also store the full-size frame (JPEG) per keyframe

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.candidate_every_s <= 0:
            raise ValueError("keyframe interval and candidate step must be positive")
        if self.thumbnail_format not in ("jpeg", "webp"):
            raise ValueError("ARCHIVE_THUMBNAIL_FORMAT must be jpeg or webp")

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
        }


@dataclass
class Candidate:
    """A frame that may become a keyframe (its thumbnail-size image, full frame if wanted)."""

    index: int
    time_s: float
    image: np.ndarray
    full: np.ndarray | None = None


@dataclass(frozen=True)
class Decision:
    """A frame whose shot is known: its shot ordinal, or None inside a transition."""

    index: int
    shot: int | None


class SceneTracker:
    """TransNetV2's `predictions_to_scenes`, one frame at a time.

    Frame i with transition flag t: a falling edge starts a shot at i; a rising edge ends the
    current shot at i (inclusive); frames inside a transition belong to no shot. `finish`
    returns the shots as (first, last) frames, exactly as predictions_to_scenes would.
    """

    def __init__(self) -> None:
        self.scenes: list[tuple[int, int]] = []
        self._prev = 0
        self._start = 0
        self._last = -1

    def step(self, index: int, transition: bool) -> Decision:
        """Feed frame `index` (in order); return which shot it belongs to."""
        t = int(transition)
        if self._prev == 1 and t == 0:
            self._start = index
        shot: int | None = len(self.scenes) if t == 0 else None
        if self._prev == 0 and t == 1 and index != 0:
            self.scenes.append((self._start, index))
            shot = len(self.scenes) - 1
        self._prev, self._last = t, index
        return Decision(index, shot)

    def finish(self) -> list[tuple[int, int]]:
        """All shots once the last frame is in."""
        if self._last >= 0 and self._prev == 0:  # the last frame is not in a transition
            self.scenes.append((self._start, self._last))
        if not self.scenes and self._last >= 0:
            self.scenes.append((0, self._last))
        return self.scenes


class CutTracker:
    """The same for detectors that report cuts (the first frame of a new shot): every frame
    belongs to a shot."""

    def __init__(self) -> None:
        self.scenes: list[tuple[int, int]] = []
        self._start = 0
        self._last = -1

    def step(self, index: int, cut: bool) -> Decision:
        """Feed frame `index` (in order); return which shot it belongs to."""
        if cut and index > 0:
            self.scenes.append((self._start, index - 1))
            self._start = index
        self._last = index
        return Decision(index, len(self.scenes))

    def finish(self) -> list[tuple[int, int]]:
        """All shots once the last frame is in."""
        if self._last >= 0:
            self.scenes.append((self._start, self._last))
        return self.scenes


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
