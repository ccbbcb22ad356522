"""Build the demo archive by code: generated speech and video across decades, plus shared media.

Generated items (espeak-ng voices, ffmpeg-drawn video with hard cuts and burnt-in text):

| key | decade rule | what |
|---|---|---|
| interviews/harbour_interview.wav (+ .json) | sidecar 1987-03-14 | two voices, 4 turns |
| tv/decade=1990s/evening_news.mp4 | path segment | 4 shots with captions + speech |
| radio/radio_bulletin_1974.flac | year in name | audio-only bulletin |
| film/reel_0042.mp4 (catalogue.csv) | catalogue 1962 | silent film reel, 3 shots + captions |
| misc/untitled_tape.wav | undated | one voice |
| broken/corrupt_tape.mp4, broken/empty_transfer.wav | undated | truncated and empty files |

With `../shared/media` present, its real recordings are copied under `shared/` and dated in
`catalogue.csv` where the date is known (JFK 1961, Big Buck Bunny 2008).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from archive_pipeline.quality.generated import Title, titled_video

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
FONT_REGULAR = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# (espeak-ng voice, pitch 0-99): two clearly different voices, like two real people.
VOICES = {"A": ("en-us+m3", 25), "B": ("en-gb+f3", 85), "C": ("en+m1", 45)}

DIALOGUE = [
    ("A", "Good morning. You have worked on the harbour for thirty years. What has changed?"),
    ("B", "Everything has changed. The cranes are bigger and the ships arrive at night."),
    ("A", "Do you remember the winter when the river froze?"),
    ("B", "I remember it well. We walked across the ice to the old lighthouse."),
]
NEWS = [
    "Good evening. Here is the news.",
    "The city council approved the new tram line today.",
    "Fishermen report a record catch in the northern bay.",
    "And now the weather: rain in the morning, sunshine later.",
]
NEWS_CAPTIONS = ["EVENING NEWS", "TRAM LINE APPROVED", "RECORD CATCH", "WEATHER"]
REEL_CAPTIONS = ["REEL 42", "CITY CENTRE", "THE END"]
BULLETIN = (
    "This is the morning bulletin. Traffic is light on the coast road. The ferry runs on time."
)
UNTITLED = "Testing, testing. This tape has no label and no date."
# A German radio news bulletin (no catalogue language: detected)
NACHRICHTEN = [
    "Hier ist der Berliner Rundfunk mit den Nachrichten, die Straßenbahn fährt ab Montag wieder "
    "durch die Innenstadt.",
    "Am nächsten Morgen waren die Straßen voller Menschen, und überall hörte man Musik und "
    "Gespräche.",
]
# A Berlin radio interview that switches language with the speaker: a German host (espeak-ng's
# German voice) and an English guest. Catalogued as German: the catalogue language is a hint.
# (Some short espeak-ng German sentences sound English to Whisper: the host's turns are whole
# sentences it hears as German, p=0.99 with base.)
BILINGUAL = [
    (
        ("de", 40),
        "Guten Abend aus Berlin, heute Abend spricht unser Gast über die Nacht, "
        "als die Mauer fiel.",
    ),
    (
        ("en-gb+f3", 85),
        "Thank you. I was standing at the border crossing, and nobody knew what would happen next.",
    ),
    (
        ("de", 40),
        "Die Grenze wurde geöffnet, und tausende Menschen gingen zum ersten Mal über die Brücke "
        "nach Westberlin.",
    ),
    (
        ("en-gb+f3", 85),
        "In the morning the streets were full of people, and everybody was talking to strangers.",
    ),
    (
        ("de", 40),
        "Vielen Dank für das Gespräch, wir hören uns nächste Woche wieder, auf Wiederhören.",
    ),
]

FILM_TITLE = "KINO NORD PRESENTS"
PRESS_RELEASE = [
    [
        "STADTARCHIV BERLIN",
        "Pressemitteilung vom 12. Mai 1978",
        "Die neue Fähre nach Spandau fährt ab Montag.",
        "Fahrkarten gibt es am Hafen.",
    ],
    [
        "BERLIN CITY ARCHIVE",
        "Press release, 12 May 1978",
        "The new ferry to Spandau runs from Monday.",
        "Tickets are sold at the harbour.",
    ],
]


def scanned_pages(out: Path, pages: list[list[str]]) -> None:
    """A multi-page greyscale TIFF like a flatbed scan: off-white paper, slight noise, a line of
    text per entry (the first larger), 150 dpi A5."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1978)
    images = []
    for lines in pages:
        image = Image.new("L", (874, 1240), 236)
        draw = ImageDraw.Draw(image)
        y = 120
        for i, line in enumerate(lines):
            font = ImageFont.truetype(FONT if i == 0 else FONT_REGULAR, 40 if i == 0 else 28)
            draw.text((80, y), line, fill=25, font=font)
            y += 90 if i == 0 else 60
        noisy = np.asarray(image, np.int16) + rng.normal(0, 6, (1240, 874)).astype(np.int16)
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    images[0].save(
        out, save_all=True, append_images=images[1:], compression="tiff_lzw", dpi=(150, 150)
    )


SHARED = [
    # (source under ../shared/media, key in the inbox, catalogue.csv metadata or None)
    (
        "speech/jfk.flac",
        "shared/speech/jfk.flac",
        {
            "date": "1961-01-20",
            "title": "Inaugural address (excerpt)",
            "language": "en",
            "speakers": "John F. Kennedy",
        },
    ),
    ("speech/librivox-0870.wav", "shared/speech/librivox-0870.wav", None),
    ("speech/librivox-0880.wav", "shared/speech/librivox-0880.wav", None),
    ("speech/librivox-0890.wav", "shared/speech/librivox-0890.wav", None),
    ("speakers/ami-tst00.wav", "shared/speakers/ami-tst00.wav", None),
    ("video/bikes.mp4", "shared/video/bikes.mp4", None),
    (
        "video/bigbuckbunny-5s.mp4",
        "shared/video/bigbuckbunny-5s.mp4",
        {"year": "2008", "title": "Big Buck Bunny (5 s excerpt)", "language": ""},
    ),
    ("video/counter.mp4", "shared/video/counter.mp4", None),
    ("ocr/phototest.tif", "shared/ocr/phototest.tif", None),
]


@dataclass(frozen=True)
class DemoItem:
    """One file the demo archive holds and the decade it should land in."""

    key: str
    decade: str


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-800:]}")


def speak(text: str, voice: tuple[str, int], out: Path) -> None:
    """Synthesise speech with espeak-ng (voice, pitch) into a WAV file."""
    _run(["espeak-ng", "-v", voice[0], "-p", str(voice[1]), "-s", "150", "-w", str(out), text])


def write_sidecar(media: Path, **metadata) -> None:
    """The `<file>.json` sidecar of a media file (catalogue metadata)."""
    media.with_name(media.name + ".json").write_text(json.dumps(metadata, indent=2))


def german_bulletin(out: Path, tmp: Path) -> None:
    """Write the German radio news (NACHRICHTEN, espeak-ng German voice) to `out` (FLAC)."""
    parts = []
    for i, line in enumerate(NACHRICHTEN):
        parts.append(tmp / f"nachrichten{i}.wav")
        speak(line, ("de", 55), parts[-1])
    concat_audio(parts, tmp / "nachrichten.wav")
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp / "nachrichten.wav"), str(out)])


def bilingual_interview(out: Path, tmp: Path) -> list[tuple[float, float, str]]:
    """Write the German-English interview (BILINGUAL) to `out`; return its reference turns
    (start, end, language) from the generated parts."""
    return spoken_parts(BILINGUAL, out, tmp)


def spoken_parts(
    parts: list[tuple[tuple[str, int], str]], out: Path, tmp: Path
) -> list[tuple[float, float, str]]:
    """Speak (voice, text) parts one after another into `out` (0.5 s apart); return each part's
    (start, end, language: the voice's first two letters)."""
    import soundfile

    files, turns, t = [], [], 0.0
    for i, (voice, line) in enumerate(parts):
        part = tmp / f"{out.stem}-part{i}.wav"
        speak(line, voice, part)
        files.append(part)
        seconds = soundfile.info(part).duration
        turns.append((t, t + seconds, voice[0][:2]))
        t += seconds + 0.5
    out.parent.mkdir(parents=True, exist_ok=True)
    concat_audio(files, out)
    return turns


def concat_audio(parts: list[Path], out: Path, *, gap_s: float = 0.5, rate: int = 16000) -> None:
    """Concatenate WAV parts with silence between them, resampled to mono `rate`."""
    inputs, filters = [], []
    for i, part in enumerate(parts):
        inputs += ["-i", str(part)]
        filters.append(
            f"[{i}:a]aresample={rate},aformat=channel_layouts=mono,apad=pad_dur={gap_s}[a{i}]"
        )
    chain = "".join(f"[a{i}]" for i in range(len(parts)))
    graph = ";".join(filters) + f";{chain}concat=n={len(parts)}:v=0:a=1[out]"
    _run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            *inputs,
            "-filter_complex",
            graph,
            "-map",
            "[out]",
            str(out),
        ]
    )


def captioned_video(
    captions: list[str], colours: list[str], out: Path, *, shot_s: float, audio: Path | None
) -> None:
    """Render one shot per caption (hard cuts between colours/patterns) with burnt-in text."""
    inputs, filters = [], []
    for i, (caption, colour) in enumerate(zip(captions, colours, strict=True)):
        source = (
            f"testsrc2=s=640x360:r=25:d={shot_s}"
            if colour == "pattern"
            else f"color=c={colour}:s=640x360:r=25:d={shot_s}"
        )
        inputs += ["-f", "lavfi", "-i", source]
        text = caption.replace(":", r"\:")
        filters.append(
            f"[{i}:v]drawtext=fontfile={FONT}:text='{text}':fontsize=44:fontcolor=white:"
            f"box=1:boxcolor=black@0.6:boxborderw=12:x=(w-text_w)/2:y=h-90[v{i}]"
        )
    chain = "".join(f"[v{i}]" for i in range(len(captions)))
    graph = ";".join(filters) + f";{chain}concat=n={len(captions)}:v=1:a=0[v]"
    cmd = ["ffmpeg", "-v", "error", "-y", *inputs]
    if audio is not None:
        cmd += ["-i", str(audio)]
    cmd += ["-filter_complex", graph, "-map", "[v]"]
    if audio is not None:
        cmd += ["-map", f"{len(captions)}:a", "-c:a", "aac", "-b:a", "96k", "-shortest"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)]
    _run(cmd)


def build_demo_inbox(inbox: Path, *, shared_media: Path | None = None) -> list[DemoItem]:
    """Write the demo archive into `inbox` (which should be empty); return the expected items."""
    inbox.mkdir(parents=True, exist_ok=True)
    items: list[DemoItem] = []
    catalogue: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="archive-demo-") as tmp_name:
        tmp = Path(tmp_name)

        parts = []
        for i, (who, line) in enumerate(DIALOGUE):
            speak(line, VOICES[who], tmp / f"turn{i}.wav")
            parts.append(tmp / f"turn{i}.wav")
        interview = inbox / "interviews/harbour_interview.wav"
        interview.parent.mkdir(parents=True, exist_ok=True)
        concat_audio(parts, interview)
        write_sidecar(
            interview,
            title="Harbour workers interview",
            recorded_date="1987-03-14",
            language="en",
            speakers=["Interviewer", "Dock worker"],
        )
        items.append(DemoItem("interviews/harbour_interview.wav", "1980s"))

        news_parts = []
        for i, line in enumerate(NEWS):
            speak(line, VOICES["A"] if i % 2 == 0 else VOICES["B"], tmp / f"news{i}.wav")
            news_parts.append(tmp / f"news{i}.wav")
        concat_audio(news_parts, tmp / "news.wav", gap_s=0.3)
        news = inbox / "tv/decade=1990s/evening_news.mp4"
        news.parent.mkdir(parents=True, exist_ok=True)
        captioned_video(
            NEWS_CAPTIONS,
            ["navy", "pattern", "darkgreen", "maroon"],
            news,
            shot_s=4.5,
            audio=tmp / "news.wav",
        )
        items.append(DemoItem("tv/decade=1990s/evening_news.mp4", "1990s"))

        speak(BULLETIN, VOICES["C"], tmp / "bulletin.wav")
        bulletin = inbox / "radio/radio_bulletin_1974.flac"
        bulletin.parent.mkdir(parents=True, exist_ok=True)
        _run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp / "bulletin.wav"), str(bulletin)])
        items.append(DemoItem("radio/radio_bulletin_1974.flac", "1970s"))

        german_bulletin(inbox / "radio/berliner_rundfunk_1976.flac", tmp)
        catalogue.append(
            {"path": "radio/berliner_rundfunk_1976.flac", "year": "1976", "title": "Nachrichten"}
        )
        items.append(DemoItem("radio/berliner_rundfunk_1976.flac", "1970s"))

        berlin = inbox / "interviews/berlin_mauerfall_1989.wav"
        bilingual_interview(berlin, tmp)
        write_sidecar(
            berlin,
            title="Berliner Rundfunk: Die Nacht des Mauerfalls",
            recorded_date="1989-11-10",
            language="de",
            speakers=["Moderator", "Guest"],
        )
        items.append(DemoItem("interviews/berlin_mauerfall_1989.wav", "1980s"))

        reel = inbox / "film/reel_0042.mp4"
        reel.parent.mkdir(parents=True, exist_ok=True)
        captioned_video(REEL_CAPTIONS, ["gray", "pattern", "black"], reel, shot_s=2.0, audio=None)
        catalogue.append(
            {
                "path": "film/reel_0042.mp4",
                "year": "1962",
                "title": "Reel 42: city centre",
                "language": "",
                "speakers": "",
            }
        )
        items.append(DemoItem("film/reel_0042.mp4", "1960s"))

        # a title card shown for 2 s in the middle of a shot: only text-aware sampling sees it
        title_film = inbox / "film/kino_nord_1965.mp4"
        titled_video(title_film, [Title(FILM_TITLE, 2.0, 4.0, size=44, fade_s=0.3)])
        catalogue.append(
            {"path": "film/kino_nord_1965.mp4", "year": "1965", "title": "Kino Nord: opening"}
        )
        items.append(DemoItem("film/kino_nord_1965.mp4", "1960s"))

        # a scanned two-page press release (German, then English), a still item
        scan = inbox / "scans/pressemitteilung_1978.tif"
        scanned_pages(scan, PRESS_RELEASE)
        catalogue.append(
            {
                "path": "scans/pressemitteilung_1978.tif",
                "year": "1978",
                "title": "Pressemitteilung: Neue Fähre",
            }
        )
        items.append(DemoItem("scans/pressemitteilung_1978.tif", "1970s"))

        untitled = inbox / "misc/untitled_tape.wav"
        untitled.parent.mkdir(parents=True, exist_ok=True)
        speak(UNTITLED, VOICES["B"], untitled)
        items.append(DemoItem("misc/untitled_tape.wav", "undated"))

        broken = inbox / "broken"
        broken.mkdir(parents=True, exist_ok=True)
        (broken / "corrupt_tape.mp4").write_bytes(news.read_bytes()[:4096])
        (broken / "empty_transfer.wav").write_bytes(b"")
        items += [
            DemoItem("broken/corrupt_tape.mp4", "undated"),
            DemoItem("broken/empty_transfer.wav", "undated"),
        ]

    if shared_media is not None and shared_media.is_dir():
        for source, key, meta in SHARED:
            src = shared_media / source
            if not src.exists():
                continue
            dst = inbox / key
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            decade = "undated"
            if meta:
                catalogue.append(
                    {
                        "path": key,
                        **{
                            k: meta.get(k, "")
                            for k in ("date", "year", "title", "language", "speakers")
                        },
                    }
                )
                year = int((meta.get("date") or meta.get("year"))[:4])
                decade = f"{year // 10 * 10}s"
            items.append(DemoItem(key, decade))

    fields = ["path", "date", "year", "title", "language", "speakers"]
    with open(inbox / "catalogue.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in catalogue:
            writer.writerow({k: row.get(k, "") for k in fields})
    return items
