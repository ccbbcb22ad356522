"""Generated speech fixtures: dialogues and a meeting with reference turns, silence, mute video."""

from __future__ import annotations

import subprocess
from pathlib import Path

from archive_pipeline.core.audio import decode_audio
from archive_pipeline.demo.build import DIALOGUE, VOICES, concat_audio, speak

GAP_S = 0.5


# A four-person meeting (espeak-ng voices of both sexes and three accents) and a German
# two-voice interview: diarisation is measured on these, never tuned to them.
MEETING_VOICES = {
    "A": ("en-us+m3", 25),  # the dialogue's A: the same voice, for finding a voice across files
    "B": ("en-gb+f3", 85),  # the dialogue's B
    "C": ("en-gb-scotland+m1", 50),
    "D": ("en+f4", 65),
}
MEETING = [
    ("A", "Let us start. The first item is the budget for the new archive building."),
    ("B", "The estimate came in higher than we expected, mostly because of the climate control."),
    ("C", "We could phase the work over two years and keep the reading room open."),
    ("D", "I agree, but the film vault has to be finished first, the reels are at risk."),
    ("A", "How long would the vault take on its own?"),
    ("C", "About eight months if the contractor starts in spring."),
    ("B", "Then we should ask the board for the first half of the money now."),
    ("D", "I will draft the request and send it round by Friday."),
    ("A", "Good. Next item: the digitisation of the radio tapes."),
    ("B", "Two thousand hours are done, about six thousand remain."),
]
GERMAN_VOICES = {"A": ("de+m3", 30), "B": ("de+f2", 80)}
GERMAN_DIALOGUE = [
    ("A", "Guten Tag. Sie haben dreißig Jahre im Hafen gearbeitet. Was hat sich verändert?"),
    ("B", "Alles hat sich verändert. Die Kräne sind größer, und die Schiffe kommen in der Nacht."),
    ("A", "Erinnern Sie sich an den Winter, als der Fluss zugefroren war?"),
    ("B", "Ich erinnere mich gut. Wir sind über das Eis zum alten Leuchtturm gegangen."),
]


def conversation(
    path: Path, lines: list[tuple[str, str]], voices: dict[str, tuple[str, int]]
) -> list[tuple[float, float, str]]:
    """Speak (who, line) turns with `voices` into `path`; return the reference turns.

    Turn boundaries come from the generated parts (speech extent measured in each part), so
    the reference is exact by construction.
    """
    parts, turns, t = [], [], 0.0
    for i, (who, line) in enumerate(lines):
        part = path.parent / f"{path.stem}-turn{i}.wav"
        speak(line, voices[who], part)
        samples = decode_audio(part)
        voiced = (abs(samples) > 0.01).nonzero()[0]
        start, end = voiced[0] / 16000, voiced[-1] / 16000
        turns.append((t + start, t + end, who))
        t += len(samples) / 16000 + GAP_S
        parts.append(part)
    concat_audio(parts, path, gap_s=GAP_S)
    return turns


def dialogue(path: Path) -> list[tuple[float, float, str]]:
    """The demo's 4-turn two-voice English dialogue and its reference turns (start, end, who)."""
    return conversation(path, DIALOGUE, VOICES)


def meeting(path: Path) -> list[tuple[float, float, str]]:
    """A 10-turn four-voice meeting (47 s) and its reference turns."""
    return conversation(path, MEETING, MEETING_VOICES)


def german_dialogue(path: Path) -> list[tuple[float, float, str]]:
    """A 4-turn two-voice German interview and its reference turns."""
    return conversation(path, GERMAN_DIALOGUE, GERMAN_VOICES)


# Six voices for panels of 3-6 speakers (accents, sexes and pitches apart, as real panels are)
PANEL_VOICES = {
    "A": ("en-us+m3", 25),
    "B": ("en-gb+f3", 85),
    "C": ("en-gb-scotland+m1", 50),
    "D": ("en+f4", 65),
    "E": ("en-029+m5", 40),
    "F": ("en-gb-x-rp+f2", 70),
}
# Short panel turns (2-5 s each), spoken round-robin
PANEL_LINES = [
    "Welcome to the panel on sound archives.",
    "Thank you, it is good to be here.",
    "Our tapes from the sixties are fading fast.",
    "We saw the same thing with the film reels.",
    "Who decides what gets digitised first?",
    "Usually the curators, with the users in mind.",
    "And what about the interviews nobody has heard?",
    "They are the hardest to catalogue.",
    "Speech recognition helps a great deal now.",
    "But the names are often wrong.",
    "That is why we check every transcript.",
    "Let us take questions from the room.",
]


def panel(path: Path, voices: int, *, rounds: int = 2) -> list[tuple[float, float, str]]:
    """A panel of `voices` speakers (3-6) taking short turns (2-5 s) round-robin, `rounds`
    times (1: each speaks once, like a short phone call of three), and its reference turns."""
    who = list(PANEL_VOICES)[:voices]
    lines = [(who[i % voices], PANEL_LINES[i % len(PANEL_LINES)]) for i in range(voices * rounds)]
    return conversation(path, lines, {w: PANEL_VOICES[w] for w in who})


# A Thai interview (no spaces between words; Whisper's word tokens are pieces of characters,
# some starting with a combining mark): two espeak-ng Thai voices apart in pitch
THAI_VOICES = {"A": ("th", 20), "B": ("th+f3", 85)}
THAI_INTERVIEW = [
    ("A", "สวัสดีครับ วันนี้เรามาคุยเรื่องหอจดหมายเหตุของเมือง"),
    ("B", "ขอบคุณค่ะ เราเก็บเทปวิทยุเก่าไว้มากกว่าสองพันชั่วโมง"),
    ("A", "แล้วคุณเริ่มแปลงเป็นดิจิทัลเมื่อไหร่ครับ"),
    ("B", "เราเริ่มเมื่อสิบปีที่แล้ว และยังทำงานต่อทุกวันค่ะ"),
]


def thai_interview(path: Path, *, turns: int = 4) -> list[tuple[float, float, str]]:
    """A two-voice Thai interview of `turns` turns (up to 4) and its reference turns."""
    return conversation(path, THAI_INTERVIEW[:turns], THAI_VOICES)


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
