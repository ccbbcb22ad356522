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
OTHER_PICTURE = 0.5  # ... below this: unrelated pictures (another shot)
ABRUPT = OTHER_PICTURE / 2  # consecutive frames this unrelated: a cut, whatever the model says
WEAK = 0.4  # a frame scoring this share of the threshold may belong to a gradual transition
GRADUAL_MIN_FRAMES = 3  # ... when at least this many such frames follow each other
SPLIT_MIN_FRAMES = 2  # two peaks over the threshold this far apart in one run are two cuts
FLASH_MAX_FRAMES = 3  # a run this short between two sides that are the same picture: no cut


@dataclass
class _Seen:
    index: int
    score: float
    flagged: bool
    dark: bool
    grey: np.ndarray  # brightness-normalised luma of the small frame (zero mean, unit norm)
    gradual: float = 0.0  # TransNetV2's all-frames ("many-hot") probability: inside a transition
    abrupt: bool = False  # the next frame is an unrelated picture (correlation under ABRUPT)


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
    exactly one shot (inclusive ends).

    A score is the detector's belief that a transition ends after the frame (TransNetV2's cut
    head: its probability; a cut detector: 1 on the frame before a cut); `gradual` is
    TransNetV2's all-frames head (every frame inside a transition). A run of frames is those
    scoring over WEAK x threshold, or opened by `gradual` over the threshold and kept open by it
    over WEAK x threshold, or followed by an unrelated picture between two continuous ones
    (`_abrupt_cut`: TransNetV2 misses some cuts into shots of a few frames). A run gives (see
    `_peaks`) a cut at each abrupt peak over the threshold (a burst of short shots), else one
    boundary when its peak passes the threshold, it lasts GRADUAL_MIN_FRAMES (a dissolve: the
    cut head stays at 0.1-0.4 on a long one, the all-frames head marks it whole), or a frame of
    it is an abrupt cut; the boundary follows the peak (a hard cut's last old frame),
    or the run's middle where the cut head never rose. A run of at most FLASH_MAX_FRAMES after
    which the picture is the one before it (a camera flash) gives none. Black frames (99% of
    the pixels darker than DARK_LEVEL) between pictures give one boundary, at the first picture
    after them; black at the start or the end belongs to the first or last shot, and a shot of
    black alone is never made. A transition within `fade_s` of such a black boundary is the same
    fade; one whose two sides are the same picture brightness apart (correlation >=
    SAME_PICTURE), or that starts in black, with black within `fade_s` is a step of a fade in or
    out: neither gives a boundary, so a fade-in at the start gives no cut. A frame is decided
    at most `fade_s` plus its transition's length (plus two frames) after it arrives (longer
    only inside black that may end the video). `previous=True`: the rules before the
    all-frames head, bursts, abrupt changes and flashes were used (for the benchmark)."""

    def __init__(
        self, fps: float, threshold: float, *, fade_s: float = 2.0, previous: bool = False
    ) -> None:
        self.threshold = threshold
        # `previous`: the rules before gradual/burst/flash evidence (kept for the benchmark)
        self.previous = previous
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
        # frames waiting for the two after them (`_abrupt_cut`)
        self._held: collections.deque[tuple] = collections.deque()

    def step(
        self, index: int, small: np.ndarray, score: float, gradual: float = 0.0
    ) -> list[Decision]:
        """Feed frame `index` (in order) with its small RGB image, transition score and (from
        TransNetV2) its all-frames probability of being inside a transition; return the frames
        decided by it (in order). A frame is looked at once the two after it are in
        (`_abrupt_cut`)."""
        grey, dark = _normalised_grey(small)
        if self.previous:
            return self._step(index, grey, dark, score, gradual, abrupt=False)
        self._held.append((index, grey, dark, score, gradual))
        if len(self._held) < 3:
            return []
        frame = self._held.popleft()
        return self._step(*frame, abrupt=self._abrupt_cut(frame, *self._held))

    def _abrupt_cut(self, frame: tuple, *following: tuple) -> bool:
        """Whether the next picture is unrelated to this frame's (correlation under ABRUPT)
        while each side is continuous (the frame before this one and the one after the next
        are their neighbours' pictures): a cut however low the model scores it (its cut head
        misses some cuts into shots of a few frames), and not noise (snow, a flicker), where
        every frame is unrelated to the last."""
        if len(following) < 2 or frame[2] or following[0][2]:
            return False
        before = self._history[-1] if self._history else None
        return (
            float(frame[1] @ following[0][1]) < ABRUPT
            and float(following[0][1] @ following[1][1]) >= OTHER_PICTURE
            and (before is None or float(before.grey @ frame[1]) >= OTHER_PICTURE)
        )

    def _step(
        self,
        index: int,
        grey: np.ndarray,
        dark: bool,
        score: float,
        gradual: float,
        *,
        abrupt: bool,
    ) -> list[Decision]:
        flagged = score > self.threshold * WEAK or abrupt
        if not self.previous:  # the all-frames head opens a run, and keeps one open lower
            flagged = flagged or gradual > self.threshold * (WEAK if self._run else 1.0)
        seen = _Seen(index, float(score), flagged, dark, grey, float(gradual), abrupt)
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
        decided = []
        while self._held:
            frame = self._held.popleft()
            decided += self._step(*frame, abrupt=self._abrupt_cut(frame, *self._held))
        if self._run:
            self._end_run(after=None)
        decisions = decided + self._decide(final=True)
        if self._last >= 0:
            starts = [0, *self._boundaries]
            ends = [b - 1 for b in self._boundaries] + [self._last]
            self.scenes = list(zip(starts, ends, strict=True))
        return decisions

    def _end_run(self, after: _Seen | None) -> None:
        run, self._run = self._run, []
        before = next((s for s in reversed(self._history) if s.index == run[0].index - 1), None)
        sides = (
            float(before.grey @ after.grey)
            if before is not None and after is not None and not before.dark and not after.dark
            else None
        )
        if self.previous:
            if max(s.score for s in run) <= self.threshold and len(run) < GRADUAL_MIN_FRAMES:
                return  # a short weak bump, not a transition
            peaks = [max(run, key=lambda s: s.score)]
        elif (
            len(run) <= FLASH_MAX_FRAMES
            and after is not None
            and not after.dark
            and self._same_shot_before(run, after)
        ):
            return  # a flash, something passing the lens, a fade within the shot: no cut
        else:
            peaks = self._peaks(run)
        if after is None:
            return  # a transition out of the last frame: no shot after it
        for peak in peaks:
            boundary = peak.index + 1
            if boundary > self._last:
                return
            if after.dark:
                kind = "into_black"
            elif sides is not None and sides >= SAME_PICTURE:
                kind = "fade"
            elif not self.previous and before is not None and before.dark:
                kind = "fade"  # out of black: a fade in (the all-frames head marks all of it)
            else:
                kind = "flagged"
            self._candidates.append((boundary, kind, run[-1].index))

    def _same_shot_before(self, run: list[_Seen], after: _Seen) -> bool:
        """Whether the picture after a run is the one just before it (within FLASH_MAX_FRAMES
        frames before its start): the run changed the picture for a moment, not the shot."""
        first = run[0].index
        return any(
            first - FLASH_MAX_FRAMES <= s.index < first
            and not s.dark
            and float(s.grey @ after.grey) >= SAME_PICTURE
            for s in self._history
        )

    def _abrupt(self, seen: _Seen) -> bool:
        """Whether the picture changes at once after this frame (unrelated pictures on its two
        sides: a hard cut), not a step of a dissolve."""
        following = next((s for s in self._history if s.index == seen.index + 1), None)
        return (
            following is not None
            and not seen.dark
            and not following.dark
            and float(seen.grey @ following.grey) < OTHER_PICTURE
        )

    def _peaks(self, run: list[_Seen]) -> list[_Seen]:
        """The frames of a run of flagged frames that end a shot (none, one, or several):
        - peaks over the threshold at least SPLIT_MIN_FRAMES apart, each where the picture
          changes at once (`_abrupt`), are cuts each (a burst of very short shots: two cuts
          two frames apart; a dissolve's two peaks are one transition);
        - else the run is one transition when its peak passes the threshold, it lasts
          GRADUAL_MIN_FRAMES (a dissolve: TransNetV2's all-frames head marks every frame of
          it, where its cut head stays low on a long one), or a frame of it is an abrupt cut
          (`_abrupt_cut`); its boundary is at that frame or the cut head's peak, or the middle
          of the run where that head never rose. A short weak bump (a title coming or going,
          a flicker) is none.
        (A short run after which the picture is the one before it is none:
        `_same_shot_before`.)"""
        strong = [
            s
            for i, s in enumerate(run)
            if s.abrupt
            or (
                s.score > self.threshold
                and all(s.score >= o.score for o in run[max(0, i - 1) : i + 2])
            )
        ]
        split: list[_Seen] = []
        for s in strong:
            if self._abrupt(s) and (not split or s.index - split[-1].index >= SPLIT_MIN_FRAMES):
                split.append(s)
        if len(split) > 1:
            return split
        peak = max(run, key=lambda s: (s.abrupt, s.score))
        if peak.score > self.threshold or peak.abrupt:
            return [peak]
        if len(run) >= GRADUAL_MIN_FRAMES:
            return [peak if peak.score > self.threshold * WEAK else run[len(run) // 2]]
        return []  # a short weak bump (a title appearing, a flicker): not a transition

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
