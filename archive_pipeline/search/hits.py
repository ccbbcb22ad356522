"""What a search answers (presentation): `SearchHit` (where to play it, what matched, how it
ranked, its snippet and deep link), `SearchResults`, and the errors a search raises."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from archive_pipeline.core.sql import sql_in

SCORE_MEANINGS = {
    "bm25_relative": "BM25 score divided by the best hit's (1.0: the best word match)",
    "cosine": "cosine similarity of query and document vectors (-1..1)",
    "rrf_normalised": "reciprocal rank fusion sum / its maximum (1.0: first in every list); "
    "equal sums are ordered by the retrievers' own scores",
}


class SearchError(ValueError):
    """A search that cannot run as asked (bad filter, no index table, model mismatch)."""


class SearchUnavailable(SearchError):
    """Nothing to search: no warehouse or no index table yet (a server state, not the
    client's error: the service answers 503)."""


@dataclass
class SearchHit:
    """One result: where to play it, what matched, and how it ranked."""

    rank: int
    score: float  # 0..1 as `SearchResults.score_meaning` says
    raw_score: float  # the retriever's own: BM25, cosine similarity, or the RRF sum
    kind: str
    uri: str
    media_id: str
    decade: str
    title: str | None
    start_s: float
    end_s: float
    time_s: float
    speaker: str | None  # catalogue name when known, else the diarisation label
    snippet: str
    text: str
    language: str | None  # of the speech (detected per segment), else null
    ocr_text: str | None
    keyframe_id: str | None  # thumbnail reference (`keyframes.row_id`)
    row_id: str
    page: int | None = None  # of a still image (scan), from 1
    region: list[float] | None = None  # the passage on the frame/page: x0, y0, x1, y1 (0-1)
    matched_by: dict[str, int] = field(default_factory=dict)  # retriever -> its rank (1-based)
    thumbnail: bytes | None = field(default=None, repr=False)

    @property
    def deep_link(self) -> str:
        """`<uri>#t=<seconds>`: a player opens the media at the hit (W3C media fragment); a
        page of a still: `<uri>#page=<n>&xywh=percent:x,y,w,h` (page and the passage's region)."""
        if self.page is None:
            return f"{self.uri}#t={self.time_s:.2f}"
        link = f"{self.uri}#page={self.page}"
        if self.region:
            x0, y0, x1, y1 = (v * 100 for v in self.region)
            link += f"&xywh=percent:{x0:.1f},{y0:.1f},{x1 - x0:.1f},{y1 - y0:.1f}"
        return link

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (thumbnail bytes left out; `keyframe_id` refers to them)."""
        data = asdict(self)
        data.pop("thumbnail")
        data["deep_link"] = self.deep_link
        return data


@dataclass
class SearchResults:
    """Hits and how the search was run (filters applied and where they came from)."""

    query: str
    searched_text: str
    mode: str
    where: str | None
    decades: tuple[str, ...] | None
    decade_filter_source: str | None  # 'argument', or which words of the query set it
    kinds: tuple[str, ...] | None
    speaker: str | None
    hits: list[SearchHit]
    retrievers: list[str]
    notes: list[str] = field(default_factory=list)
    languages: tuple[str, ...] | None = None
    score_meaning: str = "bm25_relative"  # a key of SCORE_MEANINGS
    min_similarity: float | None = None  # the relevance floor applied to vector hits
    below_floor: int = 0  # hits left out because their only match was below the floor
    known_speakers: list[str] | None = None  # when the speaker filter matched no one

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = {k: v for k, v in asdict(self).items() if k != "hits"}
        data["hits"] = [hit.to_dict() for hit in self.hits]
        return data


def snippet(text: str, query: str, *, width: int = 160) -> str:
    """A window of `text` around the first query word it contains."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    words = [w for w in re.findall(r"\w+", query.lower()) if len(w) > 2]
    lower = flat.lower()
    hits = [lower.find(w) for w in words if w in lower]
    at = min(hits) if hits else 0
    start = max(0, min(at - width // 3, len(flat) - width))
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


def make_hit(
    rank: int, row: dict, score: float, raw: float, ranks: dict[str, int], text: str
) -> SearchHit:
    """The hit of a ranked document row (`text`: the searched words, for the snippet)."""
    return SearchHit(
        rank=rank,
        score=round(float(score), 6),
        raw_score=round(float(raw), 6),
        kind=row["kind"],
        uri=row["uri"],
        media_id=row["media_id"],
        decade=row["decade"],
        title=row["title"],
        start_s=row["start_s"],
        end_s=row["end_s"],
        time_s=row["time_s"],
        speaker=row["speaker_name"] or row["speaker"],
        snippet=snippet(row["text"], text),
        text=row["text"],
        language=row["language"],
        ocr_text=row["ocr_text"],
        keyframe_id=row["keyframe_id"],
        row_id=row["row_id"],
        page=row.get("page"),
        region=row.get("region"),
        matched_by=ranks,
    )


def attach_thumbnails(open_keyframes: Callable[[], Any], hits: list[SearchHit]) -> None:
    """Each hit's keyframe thumbnail from the `keyframes` table, opened only when a hit has a
    keyframe (`open_keyframes()` gives None while there is no table)."""
    ids = sorted({hit.keyframe_id for hit in hits if hit.keyframe_id})
    keyframes = open_keyframes() if ids else None
    if keyframes is None:
        return
    rows = keyframes.to_lance().to_table(
        columns=["row_id", "thumbnail"], filter=sql_in("row_id", ids)
    )
    found = dict(
        zip(rows.column("row_id").to_pylist(), rows.column("thumbnail").to_pylist(), strict=True)
    )
    for hit in hits:
        hit.thumbnail = found.get(hit.keyframe_id)
