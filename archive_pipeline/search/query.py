"""Search over `search_documents`: BM25 full text, vector, and hybrid by reciprocal rank fusion.

Scores (`SearchHit.score`, 0..1, `SearchResults.score_meaning` names which): text mode, BM25
relative to the best hit of the query; vector mode, the cosine similarity of query and document;
fused results (hybrid, or whenever several lists are fused: keyframe images, titles), the
reciprocal-rank-fusion sum divided by its maximum (first in every list searched). `raw_score`
keeps the retriever's own number. Vector hits below a relevance floor (cosine
`min_similarity`) are left out unless a word search also found them; the results count them.
Media titles and file names are searched too: an item whose title or file name holds the query's
words brings its first document as a hit (`matched_by` 'title').

Filters (decades, kinds, speaker) are applied before ranking (Lance prefilter), so a decade
filter prunes through the BITMAP index on `decade` instead of ranking the whole archive. Vector
search embeds the query with the same text model as `segment_embeddings` (MiniLM, or OpenCLIP's
text tower) and searches only rows embedded by that model; with an image-text model, keyframe
images are searched too (text -> frame) and fused like another ranked list.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from archive_pipeline.config import settings as app_settings
from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.core.sql import sql_in
from archive_pipeline.core.warehouse import Warehouse, sql_literal
from archive_pipeline.search.documents import KINDS
from archive_pipeline.search.fusion import rank, reciprocal_rank_fusion, screened
from archive_pipeline.search.hits import (
    SCORE_MEANINGS,
    SearchError,
    SearchHit,
    SearchResults,
    SearchUnavailable,
    attach_thumbnails,
    make_hit,
)
from archive_pipeline.search.indexes import TABLE
from archive_pipeline.search.retrievers import (
    QueryBatcher,
    Retrievers,
    TitleIndex,
    and_where,
    build_filter,
)
from archive_pipeline.search.syntax import parse
from archive_pipeline.search.temporal import parse_temporal

if TYPE_CHECKING:
    from archive_pipeline.core.embedders import ClipSettings

# the names callers import from here (the API: `archive_pipeline.search`)
__all__ = [
    "MODES",
    "SCORE_MEANINGS",
    "QueryBatcher",
    "SearchError",
    "SearchHit",
    "SearchResults",
    "SearchUnavailable",
    "Searcher",
    "TitleIndex",
    "build_filter",
    "configured_clip",
    "default_searcher",
    "reciprocal_rank_fusion",
    "search",
]

MODES = ("text", "vector", "hybrid")
MAX_QUERY_CHARS = 1000
MAX_LIMIT = 300
# a hit found only by its keyframe image needs this image-text cosine: CLIP models' sit lower
# (matching pairs ~0.25-0.35, unrelated ~0.1-0.2 for ViT-B-32 as commonly reported); not
# measured here, where no OpenCLIP weights exist
MIN_IMAGE_SIMILARITY = 0.2
QUERY_CACHE = 1024  # query vectors kept (LRU, by model and text)


class Searcher(Retrievers):
    """Searches one warehouse's search_documents: checks the query and its filters, reads the
    ranked lists (`Retrievers`), fuses them (`fusion`) and answers hits (`hits`); loads the
    query embedder on first vector use."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        clip: ClipSettings | None = None,
        nprobes: int = 20,
        ef: int = 160,
        refine_factor: int | None = 4,
        refresh_s: float = 10.0,
        min_similarity: float = app_settings.SEARCH_MIN_SIMILARITY.default,
        min_image_similarity: float = MIN_IMAGE_SIMILARITY,
        embedder: Any = None,
    ) -> None:
        """`embedder`: a loaded query embedder (its `model_id` and `embed(texts)`), else the
        configured text model is loaded on first vector use."""
        from archive_pipeline.core.embedders import ClipSettings

        super().__init__(
            warehouse, nprobes=nprobes, ef=ef, refine_factor=refine_factor, refresh_s=refresh_s
        )
        self.clip = clip or ClipSettings()
        self.min_similarity = min_similarity
        self.min_image_similarity = min_image_similarity
        self._embedder = embedder
        self._batcher: QueryBatcher | None = None
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # LRU

    @property
    def text_model_id(self) -> str:
        """Model id of the query embedder (must match the table's vectors)."""
        if self._embedder is not None:
            return self._embedder.model_id
        from archive_pipeline.core.embedders import text_model_id

        return text_model_id(self.clip)

    def embed(self, text: str) -> np.ndarray:
        """The query's vector (model loaded once per Searcher). Queries arriving together
        from several threads are embedded in one batch (`QueryBatcher`); the last
        QUERY_CACHE vectors are kept, by model and text, so a repeated query (paging, a
        facet clicked, a popular search) is not embedded again."""
        with self._lock:
            if self._embedder is None:
                from archive_pipeline.core.embedders import TextEmbedder

                self._embedder = TextEmbedder(self.clip)
            if self._batcher is None:
                self._batcher = QueryBatcher(self._embedder.embed)
            key = (self._embedder.model_id, text)
            if key in self._vectors:
                self._vectors.move_to_end(key)
                return self._vectors[key]
        vector = self._batcher.embed(text)
        with self._lock:
            self._vectors[key] = vector
            while len(self._vectors) > QUERY_CACHE:
                self._vectors.popitem(last=False)
        return vector

    def search(
        self,
        *,
        query: str,
        mode: str = "hybrid",
        decades: list[str] | tuple[str, ...] | None = None,
        kinds: list[str] | tuple[str, ...] | None = None,
        speaker: str | None = None,
        languages: list[str] | tuple[str, ...] | None = None,
        limit: int = 10,
        temporal: bool = True,
        thumbnails: bool = True,
        candidates: int | None = None,
        vector: np.ndarray | None = None,
        titles: bool = True,
        media_ids: list[str] | tuple[str, ...] | None = None,
    ) -> SearchResults:
        """Search; `temporal` maps words like "in 1989" or "the eighties" to a decade filter
        when no `decades` are given (the results say so). `vector`: the query's embedding when
        the caller has it (skips the embedder); `candidates`: hits each ranked list brings to
        the fusion (default max(4 x limit, 40)); `languages`: only documents in these
        languages (codes such as 'de', 'en': a segment's detected language; a keyframe's is its
        overlapping speech's); `titles`: also match media titles and file names; `media_ids`:
        only documents of these items (an item's other moments). The query syntax (phrases,
        prefix*, -exclude, OR) is search/syntax.py's."""
        if mode not in MODES:
            raise SearchError(f"mode must be one of {MODES}, not {mode!r}")
        if not query or not query.strip():
            raise SearchError("empty query")
        if len(query) > MAX_QUERY_CHARS:
            raise SearchError(f"query longer than {MAX_QUERY_CHARS} characters")
        if not 1 <= limit <= MAX_LIMIT:
            raise SearchError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        bad = [d for d in decades or () if d not in PARTITION_KEYS]
        if bad:
            raise SearchError(f"unknown decade {bad}: use {', '.join(PARTITION_KEYS)}")
        bad = [k for k in kinds or () if k not in KINDS]
        if bad:
            raise SearchError(f"unknown kind {bad}: use {', '.join(KINDS)}")
        text = query.strip()
        source = "argument" if decades else None
        chosen = tuple(decades) if decades else None
        if not decades and temporal and (found := parse_temporal(text)):
            chosen, source = found.decades, found.describe()
            text = found.remaining or text
        kinds = tuple(kinds) if kinds else None
        bad = [code for code in languages or () if not re.fullmatch(r"[a-z]{2,3}", code)]
        if bad:
            raise SearchError(f"language codes are ISO 639 codes such as 'de' or 'en', not {bad}")
        languages = tuple(languages) if languages else None
        speaker = speaker.strip() if speaker and speaker.strip() else None
        parsed = parse(text)
        if not parsed.clauses:
            raise SearchError(
                "the query has no words to find (a `*` or `-word` alone lists nothing): use "
                'words, "a phrase", a prefix* or -word beside them'
            )
        text = parsed.plain
        where = build_filter(chosen, kinds, speaker, languages)
        if media_ids:
            where = and_where(where, sql_in("media_id", list(media_ids)))
        notes: list[str] = []
        images = mode != "text" and self._image_search(kinds, notes)
        fused_k = candidates or max(limit * 4, 40)  # what each list brings to a fusion
        title_rows = self._title_matches(text, where, chosen, fused_k) if titles else []
        fusing = mode == "hybrid" or images or bool(title_rows)  # several ranked lists
        k = fused_k if fusing else limit
        ranked: dict[str, list[dict]] = {}
        if mode in ("text", "hybrid"):
            ranked["text"] = self._fts(parsed, where, k)
        if mode in ("vector", "hybrid"):
            ranked.update(self._vector_lists(text, vector, where, k, images, notes))
        if title_rows:
            ranked["title"] = title_rows
        ranked = {name: screened(rows, parsed, name) for name, rows in ranked.items()}
        ordered, below_floor = rank(ranked, limit, fusing, self._above_floor)
        if below_floor:
            notes.append(
                f"{below_floor} hit(s) left out: their only match was a vector similarity below "
                f"the relevance floor ({self.min_similarity:g})"
            )
        hits = [
            # a document found by its item's title alone plays from the start of its span
            make_hit(
                i,
                {**row, "time_s": row["start_s"]} if set(ranks) == {"title"} else row,
                score,
                raw,
                ranks,
                text,
            )
            for i, (row, score, raw, ranks) in enumerate(ordered, 1)
        ]
        known = None
        if speaker and not hits and not self.table.count_rows(build_filter(None, None, speaker)):
            known = self.known_speakers()
            notes.append(
                f"no speaker {speaker!r} in the archive; known names: "
                f"{', '.join(known[:50]) or 'none'}"
                f"{' …' if len(known) > 50 else ''} (a diarisation label such as SPEAKER_00 "
                "also works)"
            )
        if thumbnails:
            attach_thumbnails(lambda: self.open_table("keyframes"), hits)
        score_meaning = (
            "rrf_normalised" if fusing else ("cosine" if mode == "vector" else "bm25_relative")
        )
        return SearchResults(
            query=query,
            searched_text=text,
            mode=mode,
            where=where,
            decades=chosen,
            decade_filter_source=source,
            kinds=kinds,
            speaker=speaker,
            hits=hits,
            retrievers=list(ranked),
            notes=notes,
            languages=languages,
            score_meaning=score_meaning,
            min_similarity=self.min_similarity if mode != "text" else None,
            below_floor=below_floor,
            known_speakers=known,
        )

    def _above_floor(self, name: str, row: dict) -> bool:
        floor = self.min_image_similarity if name == "image" else self.min_similarity
        return row["_similarity"] >= floor

    def _image_search(self, kinds, notes: list[str]) -> bool:
        """Whether keyframe images can be searched with the query text (same model); a note
        says why not when they cannot."""
        if kinds and "keyframe" not in kinds:
            return False
        if self.text_model_id in self.vector_models()["image_vector"]:
            return True
        if not kinds:  # pictures not asked for: their text and speech are searched, no note
            return False
        if not self.clip.configured:
            notes.append(
                "keyframe images are not searched: no image-text model is configured "
                "(ARCHIVE_CLIP_MODEL); keyframes are found by their on-screen text and speech"
            )
        else:
            notes.append(
                f"keyframe images are not searched: the table holds no image vectors of "
                f"{self.text_model_id}"
            )
        return False

    def _vector_lists(
        self, text: str, vector: np.ndarray | None, where: str | None, k: int, images: bool, notes
    ) -> dict[str, list[dict]]:
        models = self.vector_models()
        model = self.text_model_id
        if models["vector"] and model not in models["vector"]:
            raise SearchError(
                f"{TABLE} vectors were made by {sorted(models['vector'])}, but the configured "
                f"text model is {model} (ARCHIVE_CLIP_MODEL / ARCHIVE_CLIP_PRETRAINED): set the "
                "same model, or re-materialise segment_embeddings and search_documents"
            )
        # Null vectors never match, so no `IS NOT NULL` filter: it would read the whole vector
        # column on every query (1.1 s at 1M x 384-d against 9 ms without). The model filter
        # (a string scan, ~40 ms at 1M rows) only where the table mixes models.
        vector_where = where
        if len(models["vector"]) > 1:
            notes.append(f"rows embedded by other models than {model} are left out")
            vector_where = and_where(where, f"model_id = {sql_literal(model)}")
        vector = self.embed(text) if vector is None else np.asarray(vector, np.float32)
        lists = {"vector": self._vector(vector, "vector", vector_where, k)}
        if images:
            image_where = where
            if len(models["image_vector"]) > 1:
                image_where = and_where(where, f"image_model_id = {sql_literal(model)}")
            lists["image"] = self._vector(vector, "image_vector", image_where, k)
            notes.append("keyframe images searched with the query text (image-text model)")
        return lists


_SEARCHERS: dict[tuple, Searcher] = {}


def default_searcher() -> Searcher:
    """A Searcher on the configured warehouse, text model and relevance floor
    (ARCHIVE_WAREHOUSE, ARCHIVE_CLIP_*, ARCHIVE_SEARCH_MIN_SIMILARITY), kept for the process
    (the query model loads once)."""
    warehouse = Warehouse.from_settings(read_only=True)
    clip = configured_clip()
    index = app_settings.resolve("search_index")
    floors = {
        "min_similarity": index.min_similarity,
    }
    key = (warehouse.root, clip, *floors.values())
    if key not in _SEARCHERS:
        _SEARCHERS[key] = Searcher(warehouse, clip=clip, **floors)
    return _SEARCHERS[key]


def configured_clip() -> ClipSettings:
    """The text model settings of the pipeline (ARCHIVE_CLIP_MODEL / ARCHIVE_CLIP_PRETRAINED)."""
    from archive_pipeline.core.embedders import ClipSettings

    return ClipSettings.from_settings()


def search(*, query: str, warehouse: Warehouse | None = None, **options: Any) -> SearchResults:
    """Search the configured archive (or `warehouse`, with the configured text model); the
    keyword-only options of `Searcher.search`."""
    if warehouse is None:
        return default_searcher().search(query=query, **options)
    return Searcher(warehouse, clip=configured_clip()).search(query=query, **options)
