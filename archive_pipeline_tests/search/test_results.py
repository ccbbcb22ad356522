"""Results per item: grouping, sort by date, paging with totals, facets."""

import datetime as dt

import pytest

from archive_pipeline.search.query import SearchHit
from archive_pipeline.search.results import result_page


def hit(rank: int, media: str, *, decade="1980s", kind="speech", language="en", speaker=None):
    return SearchHit(
        rank=rank,
        score=1 / rank,
        raw_score=1 / rank,
        kind=kind,
        uri=f"file:///x/{media}",
        media_id=media,
        decade=decade,
        title=None,
        start_s=float(rank),
        end_s=rank + 1.0,
        time_s=float(rank),
        speaker=speaker,
        snippet="",
        text="",
        language=language,
        ocr_text=None,
        keyframe_id=None,
        row_id=f"{media}-{rank}",
    )


HITS = [
    hit(1, "a", speaker="Mayor"),
    hit(2, "b", decade="1990s", kind="keyframe", language="de"),
    hit(3, "a", kind="keyframe"),
    hit(4, "c", decade="1990s"),
    hit(5, "b", decade="1990s"),
]
CATALOG = {
    "a": {"year": 1987},
    "b": {"recorded_date": dt.date(1991, 5, 1)},
    "c": {},  # no date
}


def test_hits_are_grouped_per_item_best_first_and_paged_with_a_total():
    page = result_page(HITS, CATALOG, offset=0, limit=2)
    assert [g.media_id for g in page.groups] == ["a", "b"]
    assert [m.rank for m in page.groups[0].moments] == [1, 3]
    assert page.total == 3 and page.total_relation == "eq"
    rest = result_page(HITS, CATALOG, offset=2, limit=2, complete=False)
    assert [g.media_id for g in rest.groups] == ["c"] and rest.total_relation == "gte"


def test_sort_by_date_puts_items_without_a_date_last():
    oldest = result_page(HITS, CATALOG, offset=0, limit=10, sort="date")
    newest = result_page(HITS, CATALOG, offset=0, limit=10, sort="-date")
    assert [g.media_id for g in oldest.groups] == ["a", "b", "c"]
    assert [g.media_id for g in newest.groups] == ["b", "a", "c"]
    with pytest.raises(ValueError, match="sort"):
        result_page(HITS, CATALOG, offset=0, limit=10, sort="newest")


def test_facets_count_items_once_per_value():
    facets = result_page(HITS, CATALOG, offset=0, limit=1).facets
    assert facets["decade"] == [("1990s", 2), ("1980s", 1)]
    assert facets["kind"] == [
        ("speech", 3),
        ("keyframe", 2),
    ]
    assert dict(facets["language"]) == {"en": 3, "de": 1}
    assert facets["speaker"] == [("Mayor", 1)]
