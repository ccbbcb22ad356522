"""Indexes of `search_documents`: BM25 full-text on `text` (English analyser, for readers of the
table) and per language, with positions (phrases), on `text_en` / `text_de` (what the searcher
matches), BITMAP on `decade`
and `kind`, BTREE on `media_id`, and a vector index per vector column once it holds enough
vectors (below that, exact search is both exact and fast: a few thousand dot products)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from archive_pipeline.config import settings as app_settings

log = logging.getLogger(__name__)

TABLE = "search_documents"
# full-text columns by language, each indexed with that language's stemming and stop words
FTS_LANGUAGES = {"text_en": "English", "text_de": "German"}
VECTOR_INDEX_TYPES = ("IVF_HNSW_SQ", "IVF_PQ")


@dataclass(frozen=True)
class IndexSettings:
    """When and which vector index is built (ARCHIVE_SEARCH_VECTOR_INDEX)."""

    # vectors needed before a vector index replaces exact search
    vector_min_rows: int = 20_000
    vector_index: str = app_settings.SEARCH_VECTOR_INDEX.default

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Any] | None = None) -> IndexSettings:
        """The settings now, `search_index` fields in `overrides` first."""
        v = app_settings.resolve("search_index", overrides)
        return cls(vector_index=v.vector_index)

    def __post_init__(self) -> None:
        if self.vector_index not in VECTOR_INDEX_TYPES:
            raise ValueError(
                f"ARCHIVE_SEARCH_VECTOR_INDEX must be one of {VECTOR_INDEX_TYPES}, "
                f"not {self.vector_index!r}"
            )


def vector_index_config(kind: str):
    """The LanceDB index config for a vector index type (cosine distance)."""
    from lancedb.index import IvfHnswSq, IvfPq

    return IvfHnswSq(distance_type="cosine") if kind == "IVF_HNSW_SQ" else IvfPq("cosine")


def ensure_indexes(table, settings: IndexSettings) -> dict[str, str]:
    """Create the missing indexes of a search_documents table; returns {column: index type} of
    what exists afterwards. New rows reach existing indexes through `Warehouse.maintain`
    (optimize); until then Lance searches them exhaustively, so nothing is missed."""
    from lancedb.index import FTS, Bitmap, BTree

    existing = {tuple(ix.columns): ix.index_type for ix in table.list_indices()}
    # (the BITMAP on `decade` is made by `Warehouse.replace` for every table)
    # `text` keeps one English-analysed index for readers of the table; the searcher matches the
    # per-language columns, each with its own language's stemming and stop words
    # media_id: the documents of items whose title matched (search/query.py) are read by it
    wanted = [("text", lambda: FTS(with_position=False)), ("kind", Bitmap), ("media_id", BTree)]
    # positions: quoted phrases (search/syntax.py) are matched by them
    wanted += [
        (column, lambda language=language: FTS(with_position=True, language=language))
        for column, language in FTS_LANGUAGES.items()
    ]
    for column, config in wanted:
        if (column,) not in existing or (
            column in FTS_LANGUAGES and lacks_positions(table, column)
        ):
            _create(table, column, config())
    for column in ("vector", "image_vector"):
        if (column,) in existing:
            continue
        vectors = table.count_rows(f"{column} IS NOT NULL")
        if vectors >= settings.vector_min_rows:
            log.info("building %s index on %s (%d vectors)", settings.vector_index, column, vectors)
            _create(table, column, vector_index_config(settings.vector_index))
    return {ix.columns[0]: ix.index_type for ix in table.list_indices()}


def lacks_positions(table, column: str) -> bool:
    """Whether a full-text index was built without positions (before phrases were searched):
    a phrase query on it is refused."""
    from lancedb.query import PhraseQuery

    try:
        table.search(PhraseQuery("a b", column), query_type="fts").limit(1).to_arrow()
    except ValueError as exc:
        return "position" in str(exc)
    return False


def _create(table, column: str, config) -> None:
    """Create an index; losing a race to a concurrent writer (another decade) that made the same
    index is fine, any other failure is raised."""
    try:
        table.create_index(column, config=config, replace=True)
    except (OSError, RuntimeError, ValueError):
        table.checkout_latest()
        if not any(ix.columns == [column] for ix in table.list_indices()):
            raise
