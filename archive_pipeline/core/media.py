"""Media files: kinds by extension, ffprobe probing, streamed sha256, and the per-item errors."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from archive_pipeline.core.errors import PermanentError
from archive_pipeline.core.forks import exec_children

AUDIO_EXTENSIONS = frozenset(
    "wav flac mp3 m4a aac ogg oga opus wma aif aiff au mka ac3 amr".split()  # noqa: SIM905
)
VIDEO_EXTENSIONS = frozenset(
    "mp4 m4v mov mkv avi webm mxf mpg mpeg ts mts m2ts wmv flv 3gp ogv vob dv".split()  # noqa: SIM905
)
IMAGE_EXTENSIONS = frozenset(["jpg", "jpeg", "png", "tif", "tiff", "webp", "bmp", "gif"])
_IMAGE_FORMATS = ("image2", "_pipe", "gif", "webp")
# Anything longer than a week of continuous media is a broken header, not a recording.
MAX_DURATION_S = 7 * 24 * 3600.0
# The probe command (after the binary); the benchmark's baseline runs the very same one.
FFPROBE_ARGS = ("-v", "error", "-print_format", "json", "-show_format", "-show_streams")


class MediaError(PermanentError):
    """A per-item failure that is recorded in `failures` instead of failing the partition."""


class EmptyFileError(MediaError):
    """The object has zero bytes."""


class ProbeError(MediaError):
    """ffprobe could not read the file (corrupt, truncated or not media)."""


class UnsupportedMediaError(MediaError):
    """The file has no audio, video or image stream the pipeline can use."""


class AbsurdDurationError(MediaError):
    """The container reports a duration that cannot be real (negative, NaN, longer than a week)."""


def kind_from_extension(key: str) -> str | None:
    """Return 'audio', 'video' or 'image' by file extension, or None for non-media files."""
    ext = PurePosixPath(key).suffix.lower().lstrip(".")
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    return None


def is_media_key(key: str) -> bool:
    """Whether a store key names a media file (by extension; hidden files excluded)."""
    return kind_from_extension(key) is not None and not PurePosixPath(key).name.startswith(".")


def sha256_stream(stream: BinaryIO) -> str:
    """Return the hex sha256 of a binary stream, read in 1 MiB chunks."""
    return hashlib.file_digest(stream, "sha256").hexdigest()


def media_id_from_sha256(sha256: str) -> str:
    """Return the stable media id derived from the content hash."""
    return sha256[:32]


@dataclass(frozen=True)
class ProbeResult:
    """What ffprobe says about a file: container, duration and the main audio/video streams."""

    kind: str
    container: str
    duration_s: float | None
    bit_rate: int | None
    n_audio_streams: int
    n_video_streams: int
    n_subtitle_streams: int
    audio_codec: str | None = None
    audio_channels: int | None = None
    audio_sample_rate: int | None = None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    rotation: int = 0


@functools.cache
def ffprobe_binary() -> str:
    """Return the ffprobe path or raise a clear error naming the install step."""
    path = shutil.which("ffprobe")
    if not path:
        raise RuntimeError("ffprobe not found on PATH: install ffmpeg (`make install` does it)")
    return path


@functools.cache
def ffprobe_version() -> str:
    """Return ffprobe's version string, e.g. '5.1.8-0+deb12u1'."""
    with exec_children():
        out = subprocess.run(
            [ffprobe_binary(), "-v", "quiet", "-version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    first = out.splitlines()[0] if out else ""
    parts = first.split()
    return parts[2] if len(parts) > 2 else "unknown"


def run_ffprobe(path: Path, *, timeout_s: float = 120.0) -> dict[str, Any]:
    """Run ffprobe on a local file and return its JSON; raise ProbeError with ffprobe's message."""
    cmd = [ffprobe_binary(), *FFPROBE_ARGS, "--", str(path)]
    try:
        with exec_children():
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"ffprobe did not finish within {timeout_s:.0f} s") from None
    # Drop the decoder context addresses ("[mov,mp4 @ 0x55d0...]") so messages are reproducible.
    message = " ".join(re.sub(r" @ 0x[0-9a-f]+", "", proc.stderr).split())[:500]
    if proc.returncode != 0:
        reason = message.replace(str(path), "<file>") or f"exit code {proc.returncode}"
        raise ProbeError(f"ffprobe could not read the file: {reason}")
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        raise ProbeError("ffprobe returned unreadable output") from None


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0"):
        return None
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    rotate = (stream.get("tags") or {}).get("rotate")
    return int(rotate) % 360 if rotate and str(rotate).lstrip("-").isdigit() else 0


def interpret_probe(info: dict[str, Any], *, extension_kind: str | None) -> ProbeResult:
    """Turn ffprobe JSON into a ProbeResult; raise a MediaError for unusable media."""
    fmt = info.get("format") or {}
    streams = info.get("streams") or []
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    video = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    subtitles = [s for s in streams if s.get("codec_type") == "subtitle"]
    container = fmt.get("format_name") or "unknown"
    is_image_format = any(token in container for token in _IMAGE_FORMATS)
    if video and (is_image_format or extension_kind == "image"):
        kind = "image"
    elif video:
        kind = "video"
    elif audio:
        kind = "audio"
    else:
        raise UnsupportedMediaError(
            f"no audio or video stream (container {container!r}, {len(streams)} streams)"
        )
    duration = _float(fmt.get("duration"))
    if duration is None:
        main = (video or audio)[0]
        duration = _float(main.get("duration"))
    if kind != "image":
        if duration is None or math.isnan(duration) or duration <= 0:
            raise ProbeError(f"{kind} file reports no playable duration ({duration})")
        if duration > MAX_DURATION_S:
            raise AbsurdDurationError(f"reported duration {duration:.0f} s is longer than a week")
    result: dict[str, Any] = {
        "kind": kind,
        "container": container,
        "duration_s": duration if kind != "image" else None,
        "bit_rate": _int(fmt.get("bit_rate")),
        "n_audio_streams": len(audio),
        "n_video_streams": len(video),
        "n_subtitle_streams": len(subtitles),
    }
    if audio:
        a = audio[0]
        result |= {
            "audio_codec": a.get("codec_name"),
            "audio_channels": _int(a.get("channels")),
            "audio_sample_rate": _int(a.get("sample_rate")),
        }
    if video:
        v = video[0]
        fps = _rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate"))
        frames = _int(v.get("nb_frames"))
        if frames is None and fps and duration and kind == "video":
            frames = round(duration * fps)
        result |= {
            "video_codec": v.get("codec_name"),
            "width": _int(v.get("width")),
            "height": _int(v.get("height")),
            "fps": fps if kind == "video" else None,
            "frame_count": frames if kind == "video" else 1,
            "rotation": _rotation(v),
        }
    return ProbeResult(**result)


def probe_file(path: Path, *, extension_kind: str | None = None) -> ProbeResult:
    """Probe a local media file; raise a MediaError subclass when it is empty or unusable."""
    if path.stat().st_size == 0:
        raise EmptyFileError("file is empty (0 bytes)")
    return interpret_probe(run_ffprobe(path), extension_kind=extension_kind)
