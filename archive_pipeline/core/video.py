"""Video decoding with PyAV: frames streamed once, with their presentation times."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class NoVideoStreamError(Exception):
    """The file has no video stream."""


class VideoDecodeError(ValueError):
    """The video cannot be opened or decoded."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: index, presentation time in seconds, and the small RGB image."""

    index: int
    time_s: float
    small: np.ndarray  # (27, 48, 3) uint8, TransNetV2's input size


def iter_frames(path: Path, *, size: tuple[int, int] = (48, 27)) -> Iterator[Frame]:
    """Decode the first video stream once, yielding frames scaled to `size` (w, h) with times.

    Times come from each frame's pts (variable frame rate is handled); memory stays at one frame.
    """
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(f"cannot open video: {exc}") from None
    with container:
        if not container.streams.video:
            raise NoVideoStreamError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = float(stream.time_base) if stream.time_base else 0.0
        start = stream.start_time or 0
        width, height = size
        try:
            for index, frame in enumerate(container.decode(stream)):
                pts = frame.pts if frame.pts is not None else 0
                small = frame.reformat(
                    width=width, height=height, format="rgb24", interpolation="BICUBIC"
                ).to_ndarray()
                yield Frame(index, (pts - start) * base, small)
        except av.error.InvalidDataError as exc:
            raise VideoDecodeError(f"corrupt video data: {exc}") from None
