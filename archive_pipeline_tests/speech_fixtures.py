"""Generated speech fixtures: two-voice dialogue with reference turns, silence, mute video."""

from __future__ import annotations

import subprocess
from pathlib import Path

from archive_pipeline.core.audio import decode_audio
from archive_pipeline.demo.build import DIALOGUE, VOICES, concat_audio, speak

GAP_S = 0.5


def dialogue(path: Path) -> list[tuple[float, float, str]]:
    """Write the demo's 4-turn two-voice dialogue; return its reference turns (start, end, who).

    Turn boundaries come from the generated parts (speech extent measured in each part), so
    the reference is exact by construction.
    """
    parts, turns, t = [], [], 0.0
    for i, (who, line) in enumerate(DIALOGUE):
        part = path.parent / f"{path.stem}-turn{i}.wav"
        speak(line, VOICES[who], part)
        samples = decode_audio(part)
        voiced = (abs(samples) > 0.01).nonzero()[0]
        start, end = voiced[0] / 16000, voiced[-1] / 16000
        turns.append((t + start, t + end, who))
        t += len(samples) / 16000 + GAP_S
        parts.append(part)
    concat_audio(parts, path, gap_s=GAP_S)
    return turns


def silence(path: Path, seconds: float = 5.0) -> None:
    """A WAV of digital silence."""
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            str(seconds),
            str(path),
        ],
        check=True,
    )


def video_without_audio(path: Path) -> None:
    """A 2-second test-pattern video with no audio stream."""
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=25:d=2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )
