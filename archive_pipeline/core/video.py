"""Video decoding with PyAV: frames streamed once, with their presentation times.

One decode pass serves every consumer of a video: TransNetV2's 48x27 input on every frame,
PySceneDetect's downscaled BGR frame on every frame, and keyframe candidates (a ~320 px wide
upright RGB image, plus the full frame when asked) on a time grid. Memory stays at one frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archive_pipeline.core.errors import PermanentError


class NoVideoStreamError(PermanentError):
    """The file has no video stream."""


class VideoDecodeError(PermanentError, ValueError):
    """The video cannot be opened or decoded."""


@dataclass(frozen=True)
class FrameViews:
    """What to make of each decoded frame (None: not needed)."""

    small: tuple[int, int] | None = (48, 27)  # (w, h) for TransNetV2, every frame
    detect_width: int | None = None  # BGR at this width for PySceneDetect, every frame
    candidate_width: int | None = None  # upright RGB keyframe candidate, on the grid
    candidate_every_s: float = 0.5  # candidate grid step (the first frame is always one)
    # also a candidate where the small frame changes this much (mean absolute difference, 0-255):
    # the first frame of a new shot, so shots shorter than the grid step get one too
    candidate_on_change: float | None = 30.0
    full: bool = False  # the upright full-size RGB frame too, on the candidate grid
    probe_width: int | None = None  # upright RGB this wide for the text probe, on its own grid
    probe_every_s: float = 1.0


@dataclass(frozen=True)
class Frame:
    """One decoded frame: index, presentation time in seconds, and the requested views."""

    index: int
    time_s: float
    small: np.ndarray | None = None  # (27, 48, 3) uint8 RGB, TransNetV2's input size
    detect: np.ndarray | None = None  # BGR uint8 for PySceneDetect
    candidate: np.ndarray | None = None  # RGB uint8, upright, candidate_width wide
    full: np.ndarray | None = None  # RGB uint8, upright, full size
    probe: np.ndarray | None = None  # RGB uint8, upright, probe_width wide (text probe)


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream's coded size and nominal frame rate."""

    width: int
    height: int
    fps: float


def video_info(path: Path) -> VideoInfo:
    """Size and nominal frame rate of the first video stream (25 when the file has none)."""
    container, stream = _open(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            stream.codec_context.width, stream.codec_context.height, float(rate) if rate else 25.0
        )


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a frame's display rotation (PyAV's `frame.rotation`, degrees counter-clockwise)."""
    turns = (int(rotation) // 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(f"cannot open video: {exc}") from None
    if not container.streams.video:
        container.close()
        raise NoVideoStreamError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _candidate(frame, width: int, scaler) -> np.ndarray:
    rotation = getattr(frame, "rotation", 0) or 0
    w, h = (frame.height, frame.width) if (rotation // 90) % 2 else (frame.width, frame.height)
    width = min(width, w)
    size = (width, _even(h * width / w))
    if (rotation // 90) % 2:
        size = size[::-1]
    image = scaler.reformat(
        frame, width=size[0], height=size[1], format="rgb24", interpolation="AREA"
    ).to_ndarray()
    return upright(image, rotation)


def iter_frames(path: Path, views: FrameViews | None = None) -> Iterator[Frame]:
    """Decode the first video stream once, yielding each frame's time (from its pts, so variable
    frame rate is handled) and the views asked for."""
    import av
    from av.video.reformatter import VideoReformatter

    views = views or FrameViews()
    # one reformatter per view keeps its scaler: frame.reformat() builds a new one per call,
    # which doubled the decode time of a 640x272 video
    small_scaler, detect_scaler, candidate_scaler, probe_scaler = (
        VideoReformatter() for _ in range(4)
    )
    container, stream = _open(path)
    with container:
        base = float(stream.time_base) if stream.time_base else 0.0
        start = stream.start_time or 0
        next_candidate = next_probe = -math.inf
        previous_small = None
        try:
            for index, frame in enumerate(container.decode(stream)):
                pts = frame.pts if frame.pts is not None else 0
                time_s = (pts - start) * base
                small = detect = candidate = full = probe = None
                if views.small:
                    small = small_scaler.reformat(
                        frame,
                        width=views.small[0],
                        height=views.small[1],
                        format="rgb24",
                        interpolation="BICUBIC",
                    ).to_ndarray()
                if views.detect_width:
                    detect = detect_scaler.reformat(
                        frame,
                        width=views.detect_width,
                        height=_even(frame.height * views.detect_width / frame.width),
                        format="bgr24",
                        interpolation="AREA",
                    ).to_ndarray()
                changed = False
                if views.candidate_on_change is not None and small is not None:
                    current = small.astype(np.int16)
                    if previous_small is not None:
                        diff = np.abs(current - previous_small).mean()
                        changed = diff >= views.candidate_on_change
                    previous_small = current
                on_grid = time_s >= next_candidate
                if views.candidate_width and (on_grid or changed):
                    if on_grid:
                        step = views.candidate_every_s
                        next_candidate = (math.floor(time_s / step + 1e-6) + 1) * step
                    candidate = _candidate(frame, views.candidate_width, candidate_scaler)
                    if views.full:
                        full = upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0)
                if views.probe_width and time_s >= next_probe:
                    step = views.probe_every_s
                    next_probe = (math.floor(time_s / step + 1e-6) + 1) * step
                    probe = _candidate(frame, views.probe_width, probe_scaler)
                    if views.full and full is None:
                        full = upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0)
                yield Frame(index, time_s, small, detect, candidate, full, probe)
        except av.error.InvalidDataError as exc:
            raise VideoDecodeError(f"corrupt video data: {exc}") from None


def frames_at(
    path: Path, times: Sequence[float], *, width: int | None = None, max_gap_s: float = 2.0
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode the frames shown at `times` (seconds, any order), upright RGB, full size or
    `width` wide: seeks between distant times, decodes forward between close ones."""
    import av
    from av.video.reformatter import VideoReformatter

    scaler = VideoReformatter()
    container, stream = _open(path)
    with container:
        base = float(stream.time_base) if stream.time_base else 0.0
        start = stream.start_time or 0
        wanted = sorted(set(times))
        position = -math.inf  # time of the last decoded frame
        frames = None
        previous = None
        try:
            for target in wanted:
                if frames is None or target < position or target - position > max_gap_s:
                    seek_to = max(0.0, target - 0.5)
                    container.seek(int(seek_to / base) + start if base else 0, stream=stream)
                    frames = container.decode(stream)
                    previous = None
                    position = -math.inf
                found = None
                for frame in frames:
                    time_s = ((frame.pts if frame.pts is not None else 0) - start) * base
                    position = time_s
                    if time_s > target + 1e-6:
                        found = previous or frame  # the frame on screen at `target`
                        previous = frame
                        break
                    previous = frame
                else:
                    found = previous  # past the end: the last frame
                    frames = None
                if found is None:
                    continue
                rotation = getattr(found, "rotation", 0) or 0
                image = (
                    _candidate(found, width, scaler)
                    if width
                    else upright(found.to_ndarray(format="rgb24"), rotation)
                )
                yield target, image
        except av.error.InvalidDataError as exc:
            raise VideoDecodeError(f"corrupt video data: {exc}") from None


def prefetch(items: Iterator, *, depth: int = 32) -> Iterator:
    """Run an iterator (a decoder) in a background thread, `depth` items ahead, so decoding
    overlaps with what the caller does with each item (PyAV and torch release the GIL).
    Exceptions reach the caller; stopping early stops the thread."""
    import queue
    import threading

    done = object()
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                buffer.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # handed to the consumer
            put((False, exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = buffer.get()
            if not ok:
                raise value
            if value is done:
                return
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)
