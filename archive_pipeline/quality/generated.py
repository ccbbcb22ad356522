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


FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class Title:
    """Text burnt into a video from `start_s` to `end_s` (fading in and out over `fade_s`)."""

    text: str
    start_s: float
    end_s: float
    size: int = 40
    y: str = "(h-text_h)/2"  # ffmpeg expression: the middle; 'h*0.8' a lower third
    fade_s: float = 0.0


@dataclass(frozen=True)
class TitledVideo:
    """A generated one-shot video and the titles shown in it."""

    name: str
    titles: tuple[Title, ...]


def _drawtext(title: Title) -> str:
    text = title.text.replace(":", r"\:").replace("'", "")
    a, b, f = title.start_s, title.end_s, max(title.fade_s, 1e-3)
    alpha = f"if(lt(t,{a + f}),(t-{a})/{f},if(gt(t,{b - f}),({b}-t)/{f},1))"
    return (
        f"drawtext=fontfile={FONT}:text='{text}':fontsize={title.size}:fontcolor=white:"
        f"borderw=2:bordercolor=black:x=(w-text_w)/2:y={title.y}:"
        f"enable='between(t,{a},{b})':alpha='{alpha}'"
    )


def titled_video(
    out: Path, titles: list[Title], *, duration_s: float = 8.0, source: str = "mandelbrot"
) -> None:
    """One continuous shot (a moving ffmpeg pattern, no text of its own; random ones seeded, so
    the file is the same every time) with `titles` shown over it, 640x360, 25 fps."""
    sources = {
        "mandelbrot": f"mandelbrot=s=640x360:r={FPS}",
        "seahorse": f"mandelbrot=s=640x360:r={FPS}:start_x=-0.75:start_y=0.1:start_scale=0.3",
        "cellauto": f"cellauto=s=640x360:r={FPS}:rule=18:seed=7,scale=640:360",
        "sierpinski": f"sierpinski=s=640x360:r={FPS}:seed=7",
    }
    filters = ",".join([f"trim=duration={duration_s}", *(_drawtext(t) for t in titles)])
    _ffmpeg("-f", "lavfi", "-i", sources[source], "-vf", filters, *_encode(), out)


def title_videos(out: Path) -> list[TitledVideo]:
    """The title set: titles mid-shot between keyframes, large and small, centred and in the
    lower third, cut in and faded, on four moving backgrounds. Writes into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    cases = {
        "mandelbrot": [
            Title("THE PEACH OPEN MOVIE PROJECT PRESENTS", 1.0, 3.0, size=22),
            Title("A HARBOUR FILM", 9.0, 11.0, size=56, fade_s=0.5),
        ],
        "seahorse": [
            Title("Interview recorded in Hamburg", 1.5, 3.5, size=28, y="h*0.8"),
            Title("Kapitel zwei: Die Werft", 8.0, 10.5, size=36, fade_s=0.4),
        ],
        "cellauto": [
            Title("CITY ARCHIVE 1962", 0.5, 2.5, size=48),
            Title("Produced by Studio Nord", 9.5, 11.5, size=24, y="h*0.85"),
        ],
        "sierpinski": [
            Title("NIGHT TRAIN TO BERLIN", 1.0, 3.0, size=44, fade_s=0.5),
            Title("Kamera: Erika Brandt", 7.5, 9.5, size=30, y="h*0.8"),
        ],
    }
    made = []
    for source, titles in cases.items():
        name = f"titles_{source}"
        titled_video(out / f"{name}.mp4", titles, duration_s=13.0, source=source)
        made.append(TitledVideo(name, tuple(titles)))
    return made
