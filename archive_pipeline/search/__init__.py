"""Search over the archive's `search_documents` table (API: `search`, `Searcher`)."""

from archive_pipeline.search.query import (
    Searcher,
    SearchError,
    SearchHit,
    SearchResults,
    reciprocal_rank_fusion,
    search,
)

__all__ = [
    "SearchError",
    "SearchHit",
    "SearchResults",
    "Searcher",
    "reciprocal_rank_fusion",
    "search",
]
