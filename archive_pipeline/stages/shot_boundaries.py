"""Shot boundaries from per-frame transition scores, streamed (Dagster-free, no model).

The shots stage feeds every decoded frame's score (TransNetV2's probability, or 1 where a
PySceneDetect detector cut) to a `ShotTracker`, which decides each frame's shot a bounded
number of frames later; decided frames then go to keyframe selection (`stages/keyframes`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Decision:
    """A frame whose shot is known: its shot ordinal, and whether it is part of a transition
    (a flagged frame or a black one: not a keyframe candidate)."""

    index: int
    shot: int
    transition: bool = False


DARK_LEVEL = 32  # a frame whose 99th-percentile luma (0-255) is below this is black
SAME_PICTURE = 0.9  # correlation of brightness-normalised frames: the same picture
WEAK = 0.4  # a frame scoring this share of the threshold may belong to a gradual transition
GRADUAL_MIN_FRAMES = 3  # ... when at least this many such frames follow each other


@dataclass
class _Seen:
    index: int
    score: float
    flagged: bool
    dark: bool
    grey: np.ndarray  # brightness-normalised luma of the small frame (zero mean, unit norm)


def is_black(small: np.ndarray) -> bool:
    """Whether a (small) RGB frame is black: 99% of its pixels darker than DARK_LEVEL."""
    return float(np.percentile(small.mean(axis=2), 99)) < DARK_LEVEL


def _normalised_grey(small: np.ndarray) -> tuple[np.ndarray, bool]:
    grey = small.astype(np.float32).mean(axis=2).ravel()
    dark = float(np.percentile(grey, 99)) < DARK_LEVEL
    centred = grey - grey.mean()
    norm = float(np.linalg.norm(centred))
    return (centred / norm if norm > 1e-6 else centred), dark


class ShotTracker:
    """Shot boundaries from per-frame transition scores, streamed: every frame belongs to
    exactly one shot (inclusive ends), and a transition gives at most one boundary.

    A score is the detector's belief that a transition ends after the frame (TransNetV2: its
    probability; a cut detector: 1 on the frame before a cut). A run of frames above
    WEAK x threshold is one transition when its peak passes the threshold or it lasts
    GRADUAL_MIN_FRAMES (TransNetV2 scores a long dissolve in the 0.2-0.4 range); the boundary
    follows its peak (a dissolve's middle, a hard cut's last old frame). Black frames (99% of
    the pixels darker than DARK_LEVEL) between pictures give one boundary, at the first picture
    after them; black at the start or the end belongs to the first or last shot, and a shot of
    black alone is never made. A transition within `fade_s` of such a black boundary is the same
    fade; one whose two sides are the same picture brightness apart (correlation >=
    SAME_PICTURE) with black within `fade_s` is a step of a fade in or out: neither gives a
    boundary, so a fade-in at the start gives no cut. A frame is decided at most `fade_s` plus
    its transition's length after it arrives (longer only inside black that may end the video).
    """

    def __init__(self, fps: float, threshold: float, *, fade_s: float = 2.0) -> None:
        self.threshold = threshold
        self.horizon = max(2, round(fade_s * (fps if fps > 0 else 25.0)))
        self.scenes: list[tuple[int, int]] = []
        # frames not yet decided: (index, part of a transition)
        self._frames: collections.deque[tuple[int, bool]] = collections.deque()
        self._shot = 0  # shot of the next frame to decide (boundaries passed so far)
        self._boundaries: list[int] = []  # accepted: first frames of shots after the first
        self._candidates: list[tuple[int, str, int]] = []  # (first frame, kind, run's last)
        self._run: list[_Seen] = []
        self._picture_seen = False  # a non-black frame since the start
        self._in_black = False
        self._last_black = -(10**9)
        self._black_boundaries: list[int] = []  # recent, for flagged runs near them
        self._last = -1
        self._dark_runs: list[list[int]] = []  # [first, last] of recent runs of black frames
        self._history: collections.deque[_Seen] = collections.deque(maxlen=self.horizon + 2)

    def step(self, index: int, small: np.ndarray, score: float) -> list[Decision]:
        """Feed frame `index` (in order) with its small RGB image and transition score; return
        the frames decided by it (in order)."""
        grey, dark = _normalised_grey(small)
        flagged = score > self.threshold * WEAK
        seen = _Seen(index, float(score), flagged, dark, grey)
        self._frames.append((index, flagged or dark))
        self._last = index
        if dark:
            self._last_black = index
            if self._dark_runs and self._dark_runs[-1][1] == index - 1:
                self._dark_runs[-1][1] = index
            else:
                self._dark_runs.append([index, index])
            if self._picture_seen:
                self._in_black = True
        else:
            if self._in_black:  # black between pictures: one boundary at this picture
                self._candidates.append((index, "black", index))
                self._black_boundaries.append(index)
            self._in_black = False
            self._picture_seen = True
        if seen.flagged:
            self._run.append(seen)
        elif self._run:
            self._end_run(after=seen)
        self._history.append(seen)
        return self._decide(final=False)

    def finish(self) -> list[Decision]:
        """The frames still undecided once the last frame is in; `scenes` is then complete."""
        if self._run:
            self._end_run(after=None)
        decisions = self._decide(final=True)
        if self._last >= 0:
            starts = [0, *self._boundaries]
            ends = [b - 1 for b in self._boundaries] + [self._last]
            self.scenes = list(zip(starts, ends, strict=True))
        return decisions

    def _end_run(self, after: _Seen | None) -> None:
        run, self._run = self._run, []
        if max(s.score for s in run) <= self.threshold and len(run) < GRADUAL_MIN_FRAMES:
            return  # a short weak bump, not a transition
        peak = max(run, key=lambda s: s.score)
        boundary = peak.index + 1
        if after is None or boundary > self._last:
            return  # a transition out of the last frame: no shot after it
        before = next((s for s in reversed(self._history) if s.index == run[0].index - 1), None)
        if after.dark:
            kind = "into_black"
        elif before is not None and not before.dark and not after.dark:
            same = float(before.grey @ after.grey) >= SAME_PICTURE
            kind = "fade" if same else "flagged"
        else:
            kind = "flagged"
        self._candidates.append((boundary, kind, run[-1].index))

    def _resolve(self, boundary: int, kind: str, last: int, *, final: bool) -> bool | None:
        """True/False once known; None while frames within the horizon are still to come."""
        if boundary == 0 or self._only_black_since_boundary(boundary):
            return False  # the shot before it would be black only (a leader, a gap)
        if kind == "black":
            return True
        if any(abs(b - boundary) <= self.horizon for b in self._black_boundaries):
            return False  # the same fade as a black boundary
        if kind == "fade":
            if self._last_black < boundary and boundary - self._last_black <= self.horizon:
                return False  # a fade from black
            if last < self._last_black <= last + self.horizon:
                return False  # a fade to black
        if kind == "into_black" and self._black_until_now(boundary):
            return False if final else None  # black to the end is no shot of its own
        if not final and self._last < last + self.horizon:
            return None
        return True

    def _black_until_now(self, boundary: int) -> bool:
        return bool(self._dark_runs) and (
            self._dark_runs[-1][0] <= boundary and self._dark_runs[-1][1] == self._last
        )

    def _only_black_since_boundary(self, boundary: int) -> bool:
        start = self._boundaries[-1] if self._boundaries else 0
        return any(a <= start and b >= boundary - 1 for a, b in self._dark_runs)

    def _decide(self, *, final: bool) -> list[Decision]:
        while self._candidates:
            boundary, kind, last = self._candidates[0]
            verdict = self._resolve(boundary, kind, last, final=final)
            if verdict is None:
                break
            self._candidates.pop(0)
            if verdict and (not self._boundaries or boundary > self._boundaries[-1]):
                self._boundaries.append(boundary)
        recent = self._last - 2 * self.horizon
        self._black_boundaries = [b for b in self._black_boundaries if b >= recent]
        start = self._boundaries[-1] if self._boundaries else 0
        self._dark_runs = [r for r in self._dark_runs if r[1] >= start - 1]
        limit = self._last + 1
        if self._run:
            limit = min(limit, self._run[0].index)
        if self._candidates:
            limit = min(limit, self._candidates[0][0])
        decisions = []
        while self._frames and self._frames[0][0] < limit:
            index, transition = self._frames.popleft()
            while self._shot < len(self._boundaries) and self._boundaries[self._shot] <= index:
                self._shot += 1
            decisions.append(Decision(index, self._shot, transition))
        return decisions
