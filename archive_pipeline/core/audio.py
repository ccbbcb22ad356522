"""Audio decoding with PyAV: 16 kHz mono float32, whole or in bounded chunks cut at quiet points."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from archive_pipeline.core.errors import PermanentError

SAMPLE_RATE = 16000


class NoAudioStreamError(PermanentError):
    """The file has no audio stream."""


class AudioDecodeError(PermanentError, ValueError):
    """The audio cannot be opened or decoded (corrupt or truncated data)."""


def _frames(path: Path) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(f"cannot open audio: {exc}") from None
    with container:
        if not container.streams.audio:
            raise NoAudioStreamError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1)
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1)
        except av.error.InvalidDataError as exc:
            raise AudioDecodeError(f"corrupt audio data: {exc}") from None


def decode_audio(path: Path) -> np.ndarray:
    """Decode a whole file to 16 kHz mono float32."""
    parts = list(_frames(path))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def quietest_cut(samples: np.ndarray, search: int, frame: int = 1600) -> int:
    """Index in the last `search` samples where 100 ms frame energy is lowest (a cut point)."""
    start = max(0, len(samples) - search)
    tail = samples[start:]
    n = len(tail) // frame
    if n == 0:
        return len(samples)
    energy = (tail[: n * frame].reshape(n, frame) ** 2).mean(axis=1)
    return start + int(np.argmin(energy)) * frame + frame // 2


def iter_chunks(
    path: Path, *, chunk_s: float = 300.0, search_s: float = 10.0
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (offset seconds, samples) chunks of about `chunk_s`, each cut at a quiet point.

    Memory stays near one chunk however long the file: this is how hour-long media are read.
    """
    target, search = int(chunk_s * SAMPLE_RATE), int(search_s * SAMPLE_RATE)
    buffer: list[np.ndarray] = []
    buffered = 0
    offset = 0
    for frame in _frames(path):
        buffer.append(frame)
        buffered += len(frame)
        if buffered >= target + search:
            samples = np.concatenate(buffer)
            cut = quietest_cut(samples[: target + search], search * 2)
            yield offset / SAMPLE_RATE, samples[:cut].astype(np.float32)
            offset += cut
            buffer, buffered = [samples[cut:]], len(samples) - cut
    if buffered:
        yield offset / SAMPLE_RATE, np.concatenate(buffer).astype(np.float32)


class DecodedAudioCache:
    """16 kHz mono float32 audio decoded by one speech stage, kept for the next one of the run
    (transcripts decodes, speaker_turns reads it back): each recording is decoded once per run.

    Files are named by content (sha256), written whole or not at all, evicted least recently
    used first past `max_mb`, and removed when the run ends (`clear`). Per node: a stage on
    another node decodes again."""

    def __init__(self, folder: str, max_mb: int = 10_240) -> None:
        self.folder = folder
        self.max_mb = max_mb

    def path(self, content: str) -> Path:
        """Where a content's decoded audio is kept."""
        return Path(self.folder) / f"{content}.f32"

    def read(self, content: str) -> np.ndarray | None:
        """The decoded audio of a content, or None when it is not here."""
        import os

        path = self.path(content)
        try:
            audio = np.fromfile(path, dtype=np.float32)
            os.utime(path)  # recently used: evicted last
            return audio
        except OSError:
            return None

    def chunks(self, content: str, chunk_s: float) -> Iterator[tuple[float, np.ndarray]] | None:
        """The decoded audio of a content as (offset seconds, samples) chunks of `chunk_s`,
        read one at a time (memory stays near one chunk), or None when it is not here."""
        import os

        path = self.path(content)
        try:
            stream = open(path, "rb")  # noqa: SIM115  (closed by the generator)
            os.utime(path)  # recently used: evicted last
        except OSError:
            return None
        return _read_chunks(stream, int(chunk_s * SAMPLE_RATE))

    @contextlib.contextmanager
    def writer(self, content: str) -> Iterator[Callable[[np.ndarray], None]]:
        """Yield `keep(samples)`, called with consecutive samples; the file appears once the
        block ends without error (a failed decode leaves nothing behind)."""
        from archive_pipeline.core.store import cache_entry

        with contextlib.ExitStack() as stack:
            try:
                part = stack.enter_context(cache_entry(self.path(content), self.max_mb * 1024**2))
                out = stack.enter_context(open(part, "wb"))
            except OSError:  # no room or no permission on this node: decode without keeping
                yield lambda samples: None
                return
            yield lambda samples: out.write(np.ascontiguousarray(samples, np.float32).tobytes())

    def clear(self) -> None:
        """Remove the cached audio (the run is over)."""
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _read_chunks(stream, samples: int) -> Iterator[tuple[float, np.ndarray]]:
    with stream:
        offset = 0
        while True:
            chunk = np.fromfile(stream, dtype=np.float32, count=samples)
            if not len(chunk):
                return
            yield offset / SAMPLE_RATE, chunk
            offset += len(chunk)
