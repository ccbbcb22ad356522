"""Generated media with exact ground truth for the vision measures: fades and dissolves made
with ffmpeg's `fade` and `xfade` from two real shots of ../shared/media/video."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

FPS = 25


@dataclass(frozen=True)
class Transition:
    """A generated video and the frame spans (first, last) in which one cut is expected."""

    name: str
    spans: tuple[tuple[int, int], ...]


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def _encode() -> list[str]:
    return ["-an", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]


def transition_videos(video_media: Path, out: Path) -> list[Transition]:
    """Write the transition set into `out` (from bigbuckbunny-5s.mp4 and bikes.mp4 in
    `video_media`) and return what each should give. Shots A (3 s) and B (2 s), 640x360, 25 fps;
    transitions at A's end."""
    out.mkdir(parents=True, exist_ok=True)
    a, b = out / "shot_a.mp4", out / "shot_b.mp4"
    scale = f"scale=640:360,setsar=1,fps={FPS}"
    _ffmpeg("-i", video_media / "bigbuckbunny-5s.mp4", "-t", "3", "-vf", scale, *_encode(), a)
    # bikes frames 76-136 are one shot
    _ffmpeg("-ss", "3.04", "-i", video_media / "bikes.mp4", "-t", "2", "-vf", scale, *_encode(), b)
    cases = {
        # 0.4 s of black, then A fades in over 1.5 s: no cut
        "fade_in_start": (["-i", a, "-vf", "fade=t=in:st=0.4:d=1.5"], ()),
        # A fades out to black over 1 s at the end: no cut
        "fade_out_end": (["-i", a, "-vf", "fade=t=out:st=2:d=1"], ()),
        # a 1 s cross-dissolve from A to B (frames 50-75)
        "dissolve_1s": (
            [
                "-i",
                a,
                "-i",
                b,
                "-filter_complex",
                "[0][1]xfade=transition=fade:duration=1:offset=2",
            ],
            ((50, 75),),
        ),
        # a 1.5 s cross-dissolve (frames 37-75)
        "dissolve_1_5s": (
            [
                "-i",
                a,
                "-i",
                b,
                "-filter_complex",
                "[0][1]xfade=transition=fade:duration=1.5:offset=1.5",
            ],
            ((37, 75),),
        ),
        # A fades to black and B fades in from it, 1.2 s in all (frames 45-75)
        "fade_through_black": (
            [
                "-i",
                a,
                "-i",
                b,
                "-filter_complex",
                "[0][1]xfade=transition=fadeblack:duration=1.2:offset=1.8",
            ],
            ((45, 75),),
        ),
        # A fades out over its last second, then a hard cut to B (frame 75)
        "fade_out_cut": (
            ["-i", a, "-i", b, "-filter_complex", "[0]fade=t=out:st=2:d=1[f];[f][1]concat=n=2:v=1"],
            ((50, 76),),
        ),
        # a hard cut from A to B, then B fades out at the end
        "cut_fade_out": (
            ["-i", a, "-i", b, "-filter_complex", "[0][1]concat=n=2:v=1,fade=t=out:st=4:d=1"],
            ((74, 76),),
        ),
    }
    made = []
    for name, (args, spans) in cases.items():
        _ffmpeg(*args, *_encode(), out / f"{name}.mp4")
        made.append(Transition(name, spans))
    return made
