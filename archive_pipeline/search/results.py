"""Search hits as people browse them: grouped per media item (its best moments first), sorted
by relevance or date, paged with a total, and facet counts over the query's results.

Dagster-free and model-free: pure functions over `SearchHit`s and catalogue rows.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from archive_pipeline.search.query import SearchHit

SORTS = ("relevance", "date", "-date")  # date: oldest first; -date: newest first
FACETS = ("decade", "kind", "language", "speaker")
MOMENTS = 3  # moments shown per item (the rest are counted; `media=` lists them all)


@dataclass
class Group:
    """One media item and its moments that matched, best first."""

    media_id: str
    moments: list[SearchHit]
    catalog: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> SearchHit:
        """Its best moment."""
        return self.moments[0]

    @property
    def date(self) -> dt.date | None:
        """When it was recorded (the catalogue's date, else 1 January of its year)."""
        when = self.catalog.get("recorded_date")
        if isinstance(when, dt.datetime):
            return when.date()
        if isinstance(when, dt.date):
            return when
        year = self.catalog.get("year")
        return dt.date(int(year), 1, 1) if year else None


@dataclass
class ResultPage:
    """A page of groups, how many there are, and the facets."""

    groups: list[Group]
    total: int  # items matched (at least this many when `total_relation` is 'gte')
    total_relation: str  # 'eq' or 'gte' (more hits than were ranked)
    facets: dict[str, list[tuple[str, int]]]


def group_hits(hits: list[SearchHit], catalog: dict[str, dict]) -> list[Group]:
    """Hits grouped per media item, in the order of each item's best hit."""
    groups: dict[str, Group] = {}
    for hit in hits:
        if hit.media_id not in groups:
            groups[hit.media_id] = Group(hit.media_id, [], catalog.get(hit.media_id, {}))
        groups[hit.media_id].moments.append(hit)
    return list(groups.values())


def facet_counts(groups: list[Group]) -> dict[str, list[tuple[str, int]]]:
    """Items per decade, document kind, language and speaker among the groups (an item counts
    once per value its moments have), most first."""
    counts: dict[str, Counter] = {name: Counter() for name in FACETS}
    for group in groups:
        counts["decade"][group.best.decade] += 1
        for name, values in (
            ("kind", {m.kind for m in group.moments}),
            ("language", {m.language for m in group.moments if m.language}),
            ("speaker", {m.speaker for m in group.moments if m.speaker}),
        ):
            for value in values:
                counts[name][value] += 1
    return {
        name: sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
        for name, counter in counts.items()
    }


def sort_groups(groups: list[Group], sort: str) -> list[Group]:
    """Groups by relevance (as ranked), or by date (items without one last, by relevance)."""
    if sort == "relevance":
        return groups
    dated = [g for g in groups if g.date is not None]
    undated = [g for g in groups if g.date is None]
    return sorted(dated, key=lambda g: g.date, reverse=sort == "-date") + undated


def result_page(
    hits: list[SearchHit],
    catalog: dict[str, dict],
    *,
    offset: int,
    limit: int,
    sort: str = "relevance",
    complete: bool = True,
) -> ResultPage:
    """The page `offset`..`offset + limit` of the grouped, sorted hits; `complete`: the hits are
    all the query matched (else the total is a lower bound)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {SORTS}, not {sort!r}")
    groups = sort_groups(group_hits(hits, catalog), sort)
    return ResultPage(
        groups=groups[offset : offset + limit],
        total=len(groups),
        total_relation="eq" if complete else "gte",
        facets=facet_counts(groups),
    )
