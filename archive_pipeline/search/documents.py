"""`search_documents` rows, assembled from the other tables (Dagster-free, no model runs here).

One document per diarised speech segment and one per keyframe. A keyframe stands for a span of
its shot (from half-way to the previous keyframe of the shot, or the shot start, to half-way to
the next, or the shot end); its text is what OCR read on it, then the speech overlapping that
span, so frames are findable by words where no image-text model is configured (DESIGN §2).
`segment_embeddings` embeds exactly these texts (`keyframe_documents` is shared), so assembly
only joins vectors by source id and keeps a vector only where its text and model still match.
"""

from __future__ import annotations

import bisect
import datetime as dt
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from archive_pipeline import PIPELINE_VERSION
from archive_pipeline.contract.schemas import TABLES
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.text import UNDETERMINED, passages
from archive_pipeline.search.indexes import FTS_LANGUAGES

KINDS = ("speech", "keyframe")
# what documents need of `keyframes` (not the thumbnails)
# diarised_segments without its words (per-word structs are most of its bytes): what the
# documents and the text embeddings need
SEGMENT_COLUMNS = [name for name in TABLES["diarised_segments"].schema.names if name != "words"]
KEYFRAME_COLUMNS = [
    "row_id",
    "media_id",
    "uri",
    "shot_index",
    "keyframe_index",
    "time_s",
    "reason",
    "created_at",
]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _by_media(rows: list[dict], order: str) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["media_id"] or "", r[order])):
        grouped[row["media_id"]].append(row)
    return grouped


def keyframe_spans(keyframes: list[dict], shots: list[dict]) -> dict[str, tuple[float, float]]:
    """(start_s, end_s) of each keyframe's span, by keyframe row_id."""
    shot_times = {(s["media_id"], s["shot_index"]): (s["start_s"], s["end_s"]) for s in shots}
    in_shot: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in sorted(keyframes, key=lambda r: r["time_s"]):
        in_shot[(row["media_id"], row["shot_index"])].append(row)
    spans = {}
    for key, rows in in_shot.items():
        shot_start, shot_end = shot_times.get(key, (rows[0]["time_s"], rows[-1]["time_s"]))
        for i, row in enumerate(rows):
            start = shot_start if i == 0 else (rows[i - 1]["time_s"] + row["time_s"]) / 2
            end = shot_end if i == len(rows) - 1 else (row["time_s"] + rows[i + 1]["time_s"]) / 2
            spans[row["row_id"]] = (min(start, row["time_s"]), max(end, row["time_s"]))
    return spans


def _overlap(segment: dict, start: float, end: float) -> float:
    if end <= start:  # an instant: the segment on air then
        return 1.0 if segment["start_s"] <= start < segment["end_s"] else 0.0
    return min(segment["end_s"], end) - max(segment["start_s"], start)


def _page_lines(frame_text: pa.Table) -> dict[str, list[dict]]:
    """frame_text rows with text by keyframe, in reading order; `search_text` is the line's
    search form (`normalised`; rows written before that column: the reading)."""
    lines: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(frame_text.to_pylist(), key=lambda r: (r["keyframe_id"], r["line_index"])):
        text = (row.get("normalised") or row["text"]).strip()
        if text:
            lines[row["keyframe_id"]].append({**row, "search_text": text})
    return lines


def _main_language(rows: list[dict]) -> str | None:
    """The language most of the lines' letters are in (lines without one, or 'und', left
    out)."""
    letters: Counter[str] = Counter()
    for row in rows:
        if row.get("language") and row["language"] != UNDETERMINED:
            letters[row["language"]] += sum(c.isalpha() for c in row["search_text"])
    return max(letters, key=lambda k: (letters[k], k)) if letters else None


def _region(rows: list[dict]) -> list[float] | None:
    """The lines' bounding box as fractions of the image (x0, y0, x1, y1), when its size is
    known."""
    width, height = rows[0].get("image_width"), rows[0].get("image_height")
    if not width or not height:
        return None
    xs = [x for row in rows for x in row["box"][0::2]]
    ys = [y for row in rows for y in row["box"][1::2]]
    fractions = (min(xs) / width, min(ys) / height, max(xs) / width, max(ys) / height)
    return [round(min(1.0, max(0.0, v)), 4) for v in fractions]


def passage_id(keyframe_id: str, index: int) -> str:
    """A passage document's source id: its keyframe's for the first passage (and for a keyframe
    with one), `<keyframe_id>#<n>` for the n-th after it."""
    return keyframe_id if index == 0 else f"{keyframe_id}#{index}"


def keyframe_documents(
    keyframes: pa.Table, shots: pa.Table, frame_text: pa.Table, segments: pa.Table
) -> list[dict[str, Any]]:
    """Documents of keyframes: one per passage of its text (`core.text.passages`: paragraphs
    of a page, a few sentences each; a frame's few lines are one), the first also holding the
    speech overlapping the keyframe's span and its main speaker; one without text when it has
    no lines. `text` is what gets indexed and embedded (empty when there is nothing)."""
    frames = keyframes.select(KEYFRAME_COLUMNS).to_pylist()
    spans = keyframe_spans(frames, shots.to_pylist())
    lines = _page_lines(frame_text)
    speech = _by_media([s for s in segments.to_pylist() if not s.get("suspect")], "start_s")
    documents = []
    for frame in sorted(frames, key=lambda r: (r["media_id"], r["keyframe_index"])):
        start, end = spans[frame["row_id"]]
        overlapping = [s for s in speech.get(frame["media_id"], []) if _overlap(s, start, end) > 0]
        talk: dict[str, float] = defaultdict(float)
        names: dict[str, str | None] = {}
        for segment in overlapping:
            if segment["speaker"]:
                talk[segment["speaker"]] += _overlap(segment, start, end)
                names[segment["speaker"]] = segment["speaker_name"]
        speaker = max(talk, key=lambda s: (talk[s], s)) if talk else None
        speech_text = " ".join(s["text"].strip() for s in overlapping if s["text"].strip()) or None
        speech_language = overlapping[0]["language"] if overlapping else None
        rows = lines.get(frame["row_id"], [])
        found = passages([r["search_text"] for r in rows], [r["box"] for r in rows])
        page = frame["shot_index"] + 1 if frame.get("reason") == "page" else None
        for index, passage in enumerate(found or [None]):
            passage_rows = [rows[i] for i in passage.lines] if passage else []
            ocr_text = passage.text if passage else None
            spoken = speech_text if index == 0 else None
            ocr_language = _main_language(passage_rows)
            documents.append(
                {
                    "source_id": passage_id(frame["row_id"], index),
                    "keyframe_id": frame["row_id"],
                    "media_id": frame["media_id"],
                    "uri": frame["uri"],
                    "start_s": start,
                    "end_s": end,
                    "time_s": frame["time_s"],
                    "speaker": speaker if index == 0 else None,
                    "speaker_name": names.get(speaker) if speaker and index == 0 else None,
                    "ocr_text": ocr_text,
                    "speech_text": spoken,
                    "text": "\n".join(t for t in (ocr_text, spoken) if t),
                    # the language of the larger part: the page's text or the speech
                    "language": (
                        ocr_language
                        if ocr_text and (not spoken or len(ocr_text) >= len(spoken))
                        else speech_language
                    )
                    or speech_language
                    or ocr_language,
                    "page": page,
                    "region": _region(passage_rows) if passage_rows else None,
                    "created_at": frame["created_at"],
                }
            )
    return documents


def speech_documents(segments: pa.Table) -> list[dict[str, Any]]:
    """One document per diarised segment with text (see `searchable`)."""
    rows = sorted(segments.to_pylist(), key=lambda r: (r["media_id"], r["segment_index"]))
    pieces = Counter((r["media_id"], r.get("source_segment_index")) for r in rows)
    return [
        {
            "source_id": row["row_id"],
            "media_id": row["media_id"],
            "uri": row["uri"],
            "start_s": row["start_s"],
            "end_s": row["end_s"],
            "time_s": row["start_s"],
            "speaker": row["speaker"],
            "speaker_name": row["speaker_name"],
            "ocr_text": None,
            "speech_text": None,
            "text": row["text"].strip(),
            "language": row["language"],
            "page": None,
            "region": None,
            "created_at": row["created_at"],
        }
        for row in rows
        if searchable(row, pieces[(row["media_id"], row.get("source_segment_index"))])
    ]


MIN_DOCUMENT_CHARS = 3  # a shorter piece of an utterance is no document (the whole one is)


def searchable(row: dict[str, Any], pieces: int) -> bool:
    """A diarised segment becomes a speech document: it has text, is not flagged as a likely
    hallucination (`suspect`), and is not a sliver of an utterance cut into `pieces`."""
    text = row["text"].strip()
    if not text or row.get("suspect"):
        return False
    visible = sum(1 for c in text if unicodedata.category(c)[0] in "LN")
    return visible >= MIN_DOCUMENT_CHARS or pieces == 1


# a document's text goes to its language's full-text column (search/indexes.FTS_LANGUAGES),
# anything else to English
_COLUMN_OF = {"de": "text_de"}


def analysed_text(text: str, language: str | None) -> dict[str, str | None]:
    """The per-language full-text columns of a document: its text in its language's column."""
    column = _COLUMN_OF.get((language or "").lower(), "text_en")
    return {name: (text if name == column else None) for name in FTS_LANGUAGES}


def _keyframe_at(documents: list[dict]) -> Callable[[str, float], str | None]:
    """A function of (media_id, time) giving the keyframe on screen then (or the nearest one)."""
    by_media: dict[str, list[dict]] = defaultdict(list)
    for doc in sorted(documents, key=lambda d: d["time_s"]):
        by_media[doc["media_id"]].append(doc)

    def at(media_id: str, time_s: float) -> str | None:
        docs = by_media.get(media_id)
        if not docs:
            return None
        for doc in docs:
            if doc["start_s"] <= time_s < doc["end_s"]:
                return doc["keyframe_id"]
        times = [d["time_s"] for d in docs]
        i = bisect.bisect_left(times, time_s)
        near = [j for j in (i - 1, i) if 0 <= j < len(docs)]
        return docs[min(near, key=lambda j: abs(times[j] - time_s))]["keyframe_id"]

    return at


@dataclass
class Assembly:
    """search_documents rows of one decade and what happened to their vectors."""

    rows: list[dict[str, Any]]
    dim: int
    # documents whose embedding is missing, or was made from other text or by another model
    # (segment_embeddings not re-materialised since): kept searchable by text, without vector
    stale_vectors: list[str] = field(default_factory=list)

    @property
    def with_vector(self) -> int:
        """Rows with a text vector."""
        return sum(row["vector"] is not None for row in self.rows)

    @property
    def with_image_vector(self) -> int:
        """Rows with an image vector."""
        return sum(row["image_vector"] is not None for row in self.rows)


def assemble(
    *,
    decade: str,
    segments: pa.Table,
    keyframes: pa.Table,
    shots: pa.Table,
    frame_text: pa.Table,
    text_embeddings: pa.Table,
    image_embeddings: pa.Table | None,
    catalog: pa.Table,
    text_model_id: str,
    image_model_id: str | None,
    dim: int,
) -> Assembly:
    """Join documents with their vectors: rows for `Warehouse.replace(..., dim=dim)`."""
    speech = speech_documents(segments)
    frames = keyframe_documents(keyframes, shots, frame_text, segments)
    keyframe_at = _keyframe_at(frames)
    titles = {r["media_id"]: r["title"] for r in catalog.select(["media_id", "title"]).to_pylist()}
    texts = {
        r["source_id"]: r
        for r in text_embeddings.select(
            ["source_id", "text", "model_id", "vector", "created_at"]
        ).to_pylist()
    }
    images = {}
    if image_model_id and image_embeddings is not None:
        images = {
            r["keyframe_id"]: r["vector"]
            for r in image_embeddings.select(["keyframe_id", "model_id", "vector"]).to_pylist()
            if r["model_id"] == image_model_id and len(r["vector"]) == dim
        }
    result = Assembly(rows=[], dim=dim)
    # an item with nothing else to find it by (a film with music only, its one "Hmm" flagged
    # as a hallucination) keeps its first keyframe as a document: found by its title
    findable = {d["media_id"] for d in speech if d["text"]} | {
        d["media_id"] for d in frames if d["text"] or images.get(d["keyframe_id"]) is not None
    }
    for kind, documents in (("speech", speech), ("keyframe", frames)):
        for doc in documents:
            embedded = texts.get(doc["source_id"])
            vector = None
            created_at = doc.pop("created_at")
            if doc["text"]:
                usable = (
                    embedded is not None
                    and embedded["text"] == doc["text"]
                    and embedded["model_id"] == text_model_id
                    and len(embedded["vector"]) == dim
                )
                if usable:
                    vector = embedded["vector"]
                    created_at = max(created_at or EPOCH, embedded["created_at"] or EPOCH)
                else:
                    result.stale_vectors.append(doc["source_id"])
            # a keyframe's image vector goes with its first passage only (one image hit)
            first = kind == "keyframe" and doc["source_id"] == doc["keyframe_id"]
            image_vector = images.get(doc["keyframe_id"]) if first else None
            if image_vector is None and not doc["text"]:
                if doc["media_id"] in findable:
                    continue  # nothing to find it by
                findable.add(doc["media_id"])  # by its title only
            if kind == "speech":
                middle = (doc["start_s"] + doc["end_s"]) / 2
                doc["keyframe_id"] = keyframe_at(doc["media_id"], middle)
            result.rows.append(
                {
                    "row_id": row_id("search_documents", decade, doc["source_id"]),
                    "decade": decade,
                    "media_id": doc["media_id"],
                    "cache_key": None,
                    "model_id": text_model_id,
                    "model_params": "{}",
                    "pipeline_version": PIPELINE_VERSION,
                    "created_at": created_at,
                    "kind": kind,
                    "title": titles.get(doc["media_id"]),
                    "vector": vector,
                    "image_model_id": image_model_id if image_vector is not None else None,
                    "image_vector": image_vector,
                    **doc,
                    **analysed_text(doc["text"], doc["language"]),
                }
            )
    return result
