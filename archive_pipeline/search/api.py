"""The search service's response shapes (OpenAPI schemas of `archive-search serve`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """Every error: a message saying why."""

    error: str


class Moment(BaseModel):
    """One place in an item that matched: where to play or show it and what matched."""

    rank: int = Field(description="rank among all moments of the query, from 1")
    score: float = Field(description="0..1, as the response's `score_meaning` says")
    raw_score: float
    kind: str = Field(description="speech or keyframe")
    start_s: float
    end_s: float
    time_s: float = Field(description="where to play from")
    speaker: str | None
    language: str | None
    snippet: str
    highlights: list[tuple[int, int]] = Field(
        description="[start, end) character offsets of the matched words in `snippet`"
    )
    text: str
    ocr_text: str | None
    keyframe_id: str | None
    row_id: str
    page: int | None = Field(description="page of a scan, from 1")
    region: list[float] | None = Field(description="the passage on the page: x0, y0, x1, y1")
    matched_by: dict[str, int] = Field(description="retriever -> its rank")
    player_url: str = Field(description="the media at the moment (#t=seconds)")
    thumbnail_url: str | None
    page_url: str | None = Field(description="the page of a scan as an image")


class Group(BaseModel):
    """One media item and its best moments."""

    media_id: str
    title: str | None
    media_kind: str | None = Field(description="audio, video or image")
    decade: str
    date: str | None = Field(description="recorded (ISO date), when known")
    file: str | None = Field(description="the file's key in the archive's store")
    score: float = Field(description="its best moment's")
    moments: list[Moment]
    more_moments: int = Field(description="moments left out here: ask with media=<media_id>")
    media_url: str
    item_url: str


class FacetValue(BaseModel):
    """A filter value and how many of the query's items have it."""

    value: str
    count: int


class Filters(BaseModel):
    """The filters applied, and where a decade filter came from."""

    decades: list[str] | None
    decade_filter_source: str | None = Field(
        description="'argument', or the query's words that set it (removable: dates=false)"
    )
    kinds: list[str] | None
    languages: list[str] | None
    speaker: str | None
    media: list[str] | None


class SearchResponse(BaseModel):
    """A page of results grouped per item, the total and the facets."""

    query: str
    searched_text: str = Field(description="the query without the words read as a date")
    mode: str
    sort: str
    offset: int
    limit: int
    total: int = Field(description="items matched")
    total_relation: str = Field(description="'eq', or 'gte' when more matched than were ranked")
    groups: list[Group]
    facets: dict[str, list[FacetValue]]
    filters: Filters
    retrievers: list[str]
    notes: list[str]
    score_meaning: str
    score_meaning_text: str
    min_similarity: float | None
    below_floor: int
    known_speakers: list[str] | None
    took_ms: float


class Health(BaseModel):
    """Whether the service can search, and the table it searches."""

    status: str
    search_documents: dict[str, int] | None = None
    error: str | None = None


class Options(BaseModel):
    """What the parameters accept."""

    modes: list[str]
    kinds: list[str]
    sorts: list[str]
    decades: list[str] = Field(description="decades that hold documents")
    languages: list[str]
    speakers: list[str]
    min_similarity: float
    score_meanings: dict[str, str]
    max_limit: int
    syntax: dict[str, str]


class Item(BaseModel):
    """An item's catalogue row, per-stage status and failures."""

    catalog: dict[str, Any]
    stages: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    media_url: str


ERRORS = {
    400: {"model": Problem, "description": "a parameter the service cannot use, and why"},
    503: {"model": Problem, "description": "nothing to search yet (no index table)"},
}
IMAGE = {
    200: {"content": {"image/jpeg": {}}, "description": "the image (ETag, Cache-Control)"},
    304: {"description": "not modified (If-None-Match)"},
}
NOT_FOUND = {404: {"model": Problem, "description": "no such item, keyframe or page"}}
RANGE_ERRORS = {416: {"model": Problem, "description": "a Range outside the file"}}
