"""Subtitle and diarisation exports from the Lance tables: SRT, WebVTT and RTTM."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def _clock(seconds: float, separator: str) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _label(row: Mapping) -> str:
    return row.get("speaker_name") or row.get("speaker") or ""


def _ordered(rows: Iterable[Mapping]) -> list[Mapping]:
    return sorted(rows, key=lambda r: (r["start_s"], r["end_s"]))


def to_srt(segments: Iterable[Mapping]) -> str:
    """SRT cues, one per diarised segment, prefixed with the speaker ('Name: text')."""
    cues = []
    for i, row in enumerate(_ordered(segments), start=1):
        label = _label(row)
        text = f"{label}: {row['text']}" if label else row["text"]
        cues.append(f"{i}\n{_clock(row['start_s'], ',')} --> {_clock(row['end_s'], ',')}\n{text}\n")
    return "\n".join(cues)


def to_webvtt(segments: Iterable[Mapping]) -> str:
    """WebVTT cues with voice spans (<v Name>text) for the speaker."""
    lines = ["WEBVTT", ""]
    for row in _ordered(segments):
        label = _label(row)
        text = f"<v {label}>{row['text']}" if label else row["text"]
        lines += [f"{_clock(row['start_s'], '.')} --> {_clock(row['end_s'], '.')}", text, ""]
    return "\n".join(lines)


def to_rttm(turns: Iterable[Mapping], *, file_id: str) -> str:
    """RTTM lines (SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>)."""
    return "".join(
        f"SPEAKER {file_id} 1 {row['start_s']:.3f} {row['end_s'] - row['start_s']:.3f} "
        f"<NA> <NA> {row['speaker']} <NA> <NA>\n"
        for row in _ordered(turns)
    )
