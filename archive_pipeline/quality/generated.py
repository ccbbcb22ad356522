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


def transition_videos(video_media: Path, out: Path, *, only: int | None = None) -> list[Transition]:
    """Write the transition set into `out` (from bigbuckbunny-5s.mp4 and bikes.mp4 in
    `video_media`) and return what each should give. Shots A (3 s) and B (2 s), 640x360, 25 fps;
    transitions at A's end. `only`: the first so many cases (a smoke run)."""
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
    for name, (args, spans) in list(cases.items())[:only]:
        _ffmpeg(*args, *_encode(), out / f"{name}.mp4")
        made.append(Transition(name, spans))
    return made


FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _clip(video_media: Path, out: Path, name: str, source: str, vf: str, *, first: int, n: int):
    """Frames [first, first + n) of a shared video (25 fps) as a 640x360 clip `name`.mp4."""
    path = out / f"{name}.mp4"
    trim = f"trim=start_frame={first}:end_frame={first + n},setpts=PTS-STARTPTS"
    _ffmpeg("-i", video_media / source, "-vf", f"{trim},{vf}", *_encode(), path)
    return path


def documentary_videos(
    video_media: Path, out: Path, *, seed: int | None = None, only: int | None = None
) -> list[Transition]:
    """Documentary-style transitions made from the shared videos' shots (the bunny, the bikes'
    five street shots, a close-up crop of the bunny), written into `out`: cross-dissolves of 7
    to 60 frames, two dissolves chained (with clean frames between them, and with none), a burst
    of 2-12-frame shots cut hard, and changes that are no cut (a camera flash, a fast pan,
    subtitles coming and going). Each with the frame spans where one cut is expected (a hard
    cut: its first new frame). `seed` None: the set the shot rules were developed on; a seed:
    another set drawn at random (lengths, shots, positions) that they were not. `only`: the
    first so many cases (a smoke run)."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scale = f"scale=640:360,setsar=1,fps={FPS}"
    bunny = _clip(video_media, out, "bunny", "bigbuckbunny-5s.mp4", scale, first=0, n=132)
    close = _clip(
        video_media, out, "closeup", "bigbuckbunny-5s.mp4",
        f"crop=640:360:600:300,{scale}", first=0, n=132,
    )  # fmt: skip
    cuts_at = [(0, 30), (30, 76), (76, 137), (137, 187), (187, 242)]  # the bikes' shots
    street = [
        _clip(video_media, out, f"street{i}", "bikes.mp4", scale, first=a, n=b - a)
        for i, (a, b) in enumerate(cuts_at)
    ]
    length = {bunny: 132, close: 132} | {
        c: b - a for c, (a, b) in zip(street, cuts_at, strict=True)
    }
    hold = "tpad=stop_mode=clone:stop_duration=2"  # a held last frame: B outlasts the dissolve

    def dissolve(a: Path, b: Path, at: int, frames: int) -> list[str | Path]:
        graph = (
            f"[1]{hold}[b];[0][b]xfade=transition=fade:duration={frames / FPS}:offset={at / FPS}"
        )
        return ["-i", a, "-i", b, "-filter_complex", graph]

    cases: dict[str, tuple[list, tuple[tuple[int, int], ...]]] = {}
    if seed is None:
        dissolves = [
            (bunny, street[2], 7), (street[1], bunny, 15), (bunny, street[3], 30),
            (close, street[4], 45), (bunny, street[2], 60),
        ]  # fmt: skip
        chains, flash_frames, pan_speed = [(20, 10), (20, 0)], (50, 51), 16
    else:
        dissolves = [
            (
                [bunny, close][int(rng.integers(2))],
                street[int(rng.integers(1, 5))],
                int(frames),
            )
            for frames in sorted(rng.integers(7, 61, 5))
        ]
        chains = [
            (int(rng.integers(10, 31)), int(rng.integers(1, 13))),
            (int(rng.integers(10, 31)), 0),
        ]
        first = int(rng.integers(30, 90))
        flash_frames = (first, first + int(rng.integers(0, 2)))
        pan_speed = int(rng.integers(8, 25))
    for i, (a, b, frames) in enumerate(dissolves):
        at = min(40, length[a] - frames - 2)
        cases[f"dissolve_{i}_{frames}f"] = (dissolve(a, b, at, frames), ((at, at + frames),))
    for frames, gap in chains:  # two dissolves; B alone for `gap` frames between them
        second = 40 + frames + gap
        graph = (
            f"[1]{hold}[b];[2]{hold}[c];[0][b]xfade=transition=fade:duration={frames / FPS}:"
            f"offset=1.6[ab];[ab][c]xfade=transition=fade:duration={frames / FPS}:"
            f"offset={second / FPS}"
        )
        cases[f"chained_{frames}f_gap{gap}"] = (
            ["-i", bunny, "-i", street[3], "-i", street[4], "-filter_complex", graph],
            ((40, 40 + frames), (second, second + frames)),
        )
    # a burst of short shots: (clip, first frame, frames); neighbours are different shots
    if seed is None:
        burst = [
            (street[1], 0, 8), (bunny, 10, 10), (street[3], 5, 6), (street[2], 0, 12),
            (close, 100, 7), (street[4], 0, 9), (street[0], 0, 11), (street[2], 40, 6),
            (bunny, 90, 10), (street[3], 30, 3), (street[1], 30, 8), (street[4], 30, 12),
            (close, 20, 25),
        ]  # fmt: skip
    else:
        pool, burst, previous = [bunny, close, *street], [], None
        for n in [*rng.integers(2, 13, 11), 2, 25]:
            clip = previous
            while clip is previous:
                clip = pool[int(rng.integers(len(pool)))]
            burst.append((clip, int(rng.integers(0, length[clip] - int(n) + 1)), int(n)))
            previous = clip
    inputs: list[str | Path] = []
    parts, cuts, at = [], [], 0
    for i, (clip, first, n) in enumerate(burst):
        inputs += ["-i", clip]
        parts.append(
            f"[{i}]trim=start_frame={first}:end_frame={first + n},setpts=PTS-STARTPTS[s{i}]"
        )
        if i:
            cuts.append((at, at))
        at += n
    concat = "".join(f"[s{i}]" for i in range(len(burst))) + f"concat=n={len(burst)}:v=1"
    cases["burst_of_short_shots"] = (
        [*inputs, "-filter_complex", ";".join([*parts, concat])],
        tuple(cuts),
    )
    # no cut: a camera flash (bright frames), a fast pan, subtitles coming and going
    flash = f"eq=brightness=0.6:enable='between(n,{flash_frames[0]},{flash_frames[1]})'"
    cases["flash"] = (["-i", bunny, "-vf", flash], ())
    pan = f"crop=640:360:'min(n*{pan_speed},640)':180,{scale}"
    cases["fast_pan"] = (["-i", video_media / "bigbuckbunny-5s.mp4", "-vf", pan], ())
    subtitles = (
        f"drawtext=fontfile={FONT}:text='Die Brücke wurde 1961 gebaut':fontsize=30:"
        "fontcolor=white:box=1:boxcolor=black@0.6:x=(w-text_w)/2:y=h*0.82:"
        "enable='between(t,0.4,1.2)+between(t,1.6,2.2)'"
    )
    cases["subtitles"] = (["-i", street[2], "-vf", subtitles], ())
    made = []
    for name, (args, spans) in list(cases.items())[:only]:
        _ffmpeg(*args, *_encode(), out / f"{name}.mp4")
        made.append(Transition(name, spans))
    return made


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


def title_videos(
    out: Path, *, only: int | None = None, duration_s: float = 13.0
) -> list[TitledVideo]:
    """The title set: titles mid-shot between keyframes, large and small, centred and in the
    lower third, cut in and faded, on four moving backgrounds. Writes into `out` (`only`: the
    first so many videos; `duration_s`: shorter videos hold only the titles that end in them)."""
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
    for source, titles in list(cases.items())[:only]:
        name = f"titles_{source}"
        titles = [title for title in titles if title.end_s <= duration_s]
        titled_video(out / f"{name}.mp4", titles, duration_s=duration_s, source=source)
        made.append(TitledVideo(name, tuple(titles)))
    return made


# Printed pages: German in Fraktur (long s as in period print) and in Antiqua, English in Antiqua,
# rendered, slightly rotated, blurred and speckled like a 200 dpi scan. The text is written for
# these pages (not taken from the shared scans), so OCR measured on them is not tuned to those.
PAGE_TEXTS = {
    "de_hafen": (
        "Als der Winter vorüber war, kamen die Schiffer wieder in den Hafen der Stadt. Sie "
        "brachten Salz und Holz aus dem Norden, und auf dem Markte sprach man von nichts "
        "anderem als von den neuen Fähren, die der Rath des Sommers bauen lassen wollte.",
        "Der alte Fischer aber sagte, das Wasser sey in diesem Jahre so hoch gestiegen, dass "
        "man die Stege kaum mehr sehen könne. Es sey besser, die Mauern zu erhöhen, ehe man "
        "neue Schiffe baue, denn bey dem nächsten Sturme werde sonst die halbe Gasse "
        "überschwemmt.",
        "Im Herbste wurde endlich beschlossen, beides zu thun. Die Zimmerleute arbeiteten bis "
        "in den December an den Mauern, und im Frühjahre lief die erste Fähre vom Stapel, mit "
        "Blumen geschmückt und von der ganzen Bürgerschaft begrüßt.",
    ),
    "de_schule": (
        "In der Schule lernten die Kinder lesen und schreiben, und des Sonntags gingen sie mit "
        "den Eltern spazieren. Die Lehrerin erzählte ihnen von fremden Ländern, von großen "
        "Wüsten und hohen Bergen.",
        "Manche Schüler wollten selbst einmal reisen und die Städte am Meere sehen, andere "
        "blieben lieber im Dorfe bei ihren Gärten und Pferden. Der Pfarrer meinte, beides "
        "sey ehrenwerth, wenn man es nur mit Fleiß betreibe.",
        "Im Winter wurde die Schulstube mit Torf geheizt, den jedes Kind am Morgen mitbringen "
        "musste. Wer ihn vergaß, musste am Fenster sitzen, wo der kalte Wind durch die Ritzen "
        "pfiff.",
    ),
    "de_brief": (
        "Geehrtester Herr Professor, Ihr letzter Brief hat mich sehr erfreut, und ich beeile "
        "mich, Ihnen zu antworten. Die Sammlung der Briefe ist beinahe vollständig.",
        "Es fehlen nur noch die Schreiben aus den Jahren, in welchen Sie sich in Basel "
        "aufhielten. Ihr Verleger vermuthet, dass sie bey einem Buchhändler in Leipzig liegen, "
        "der den Nachlass Ihres Bruders gekauft hat.",
        "Sobald diese gefunden sind, soll das ganze Werk gedruckt werden, und ich hoffe, dass "
        "es bis zum Herbste erscheinen kann. Für die Kupferstiche hat sich ein junger Künstler "
        "aus Dresden angeboten.",
    ),
    "en_railway": (
        "The branch line to the coast opened in the spring of eighteen seventy. On the first "
        "day the train was so full that farmers rode on the roofs of the carriages, waving "
        "their hats at everyone they passed.",
        "For fifty years the line carried fish, coal and summer visitors. The station master "
        "kept a garden on the platform and won a prize for his roses every year.",
        "The line was closed in nineteen sixty five and the rails were taken up soon after. "
        "Today the old track bed is a footpath, and the station is a tea room.",
    ),
    "en_mill": (
        "The paper mill on the river employed two hundred workers, most of them women from "
        "the villages upstream. They walked to work before dawn and home again after dark.",
        "In eighteen ninety the owners installed a steam engine, and the old water wheel was "
        "left to rot beside the weir. Children from the town used to climb on it in summer.",
        "The mill closed after the war, when cheaper paper came by rail from the big works in "
        "the south. Its brick chimney still stands and can be seen from the bridge.",
    ),
}
# a few words of each paragraph (in order), asked as a search query (phrase recall on pages)
PAGE_PHRASES = {
    "de_hafen": (
        "Salz und Holz aus dem Norden",
        "die Stege kaum mehr sehen",
        "die erste Fähre mit Blumen geschmückt",
    ),
    "de_schule": (
        "von großen Wüsten und hohen Bergen",
        "bei ihren Gärten und Pferden",
        "die Schulstube mit Torf geheizt",
    ),
    "de_brief": (
        "die Sammlung der Briefe ist beinahe vollständig",
        "bey einem Buchhändler in Leipzig",
        "ein junger Künstler aus Dresden",
    ),
    "en_railway": (
        "farmers rode on the roofs of the carriages",
        "won a prize for his roses",
        "the old track bed is a footpath",
    ),
    "en_mill": (
        "women from the villages upstream",
        "the old water wheel was left to rot",
        "its brick chimney still stands",
    ),
}
FRAKTUR_FONTS = ("UnifrakturMaguntia_400Regular.ttf", "UnifrakturCook_700Bold.ttf")
ANTIQUA_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"


def long_s(text: str) -> str:
    """German text as period Fraktur print spells it: long s (ſ) for an s inside a word,
    round s at a word's end (a simplification: print also used round s at the end of a part
    of a compound word)."""
    import re

    return re.sub(r"s(?=[a-zäöüß])", "ſ", text)


@dataclass(frozen=True)
class Page:
    """A generated page: its lines as drawn (diplomatic: ſ kept), font, language."""

    name: str
    lines: tuple[str, ...]
    font: str
    language: str
    script: str  # "Fraktur" or "Latin"


def fraktur_font_dir() -> Path | None:
    """Where `make fonts` puts the Fraktur fonts (npm's @expo-google-fonts packages, OFL),
    or None when they are not there."""
    folder = Path(__file__).resolve().parents[2] / ".cache" / "fonts"
    return folder if all((folder / name).exists() for name in FRAKTUR_FONTS) else None


def _wrap(text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(trial) <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def render_page(paragraphs: tuple[str, ...], font_path: str, *, size: int = 36, seed: int = 0):
    """(PIL greyscale page like a 200 dpi scan, its lines): portrait 1240x1754, margins, each
    paragraph wrapped to the width with a blank line after it, then rotated 0.3 degrees,
    blurred and speckled."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font = ImageFont.truetype(font_path, size)
    width, height, margin = 1240, 1754, 120
    image = Image.new("L", (width, height), 235)
    draw = ImageDraw.Draw(image)
    lines: list[str] = []
    y = margin
    for paragraph in paragraphs:
        for line in _wrap(paragraph, font, width - 2 * margin):
            draw.text((margin, y), line, font=font, fill=25)
            lines.append(line)
            y += int(size * 1.45)
        y += int(size * 1.45)
    rng = np.random.default_rng(seed)
    image = image.rotate(0.3, resample=Image.Resampling.BICUBIC, fillcolor=235)
    image = image.filter(ImageFilter.GaussianBlur(0.7))
    pixels = np.asarray(image, np.float32) + rng.normal(0, 10, (height, width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), tuple(lines)


def printed_pages(
    out: Path, font_dir: Path, *, texts: tuple[str, ...] | None = None
) -> list[tuple[Path, Page]]:
    """Write the page set into `out` as single-page TIFFs: each German text (of `texts`, else
    all) in both Fraktur fonts (long s) and in Antiqua, each English text in Antiqua."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for key in texts or tuple(PAGE_TEXTS):
        paragraphs = PAGE_TEXTS[key]
        language = key.split("_")[0]
        variants = [("antiqua", ANTIQUA_FONT, paragraphs, "Latin")]
        if language == "de":
            fraktur = tuple(long_s(p) for p in paragraphs)
            variants += [
                (Path(n).stem.split("_")[0].lower(), str(font_dir / n), fraktur, "Fraktur")
                for n in FRAKTUR_FONTS
            ]
        for seed, (style, font, text, script) in enumerate(variants):
            image, lines = render_page(text, font, seed=seed)
            path = out / f"{key}_{style}.tif"
            image.save(path, compression="tiff_lzw", dpi=(200, 200))
            made.append((path, Page(f"{key}_{style}", lines, style, language, script)))
    return made


def page_scan(out: Path, pages: list[Path]) -> None:
    """One multi-page TIFF of the given single-page images, in that order."""
    from PIL import Image

    images = [Image.open(path) for path in pages]
    images[0].save(out, save_all=True, append_images=images[1:], compression="tiff_lzw")


def newspaper_pages(out: Path) -> list[tuple[Path, tuple[tuple[str, int], ...]]]:
    """Pages like a newspaper's, in Antiqua: each holds one paragraph of each text of its
    language, on different topics (page n: paragraph n of the first text, n+1 of the second,
    ...). Written into `out`; each page with the (text, paragraph) it holds, in order."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for language in ("de", "en"):
        keys = [key for key in PAGE_TEXTS if key.startswith(f"{language}_")]
        for n in range(3):
            held = tuple((key, (n + i) % 3) for i, key in enumerate(keys))
            image, _ = render_page(tuple(PAGE_TEXTS[k][i] for k, i in held), ANTIQUA_FONT, seed=n)
            path = out / f"newspaper_{language}_{n + 1}.tif"
            image.save(path, compression="tiff_lzw", dpi=(200, 200))
            made.append((path, held))
    return made
