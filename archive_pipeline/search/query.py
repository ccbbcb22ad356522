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

import bisect
import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from archive_pipeline import settings as app_settings
from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.core.warehouse import Warehouse, WarehouseMissingError, sql_literal
from archive_pipeline.search.documents import KINDS
from archive_pipeline.search.indexes import FTS_LANGUAGES, TABLE
from archive_pipeline.search.syntax import (
    ALL_STOP_WORDS,
    PREFIX_EXPANSIONS,
    ParsedQuery,
    fts_query,
    parse,
    plain_words,
    satisfies,
    stems,
    words,
)
from archive_pipeline.search.temporal import parse_temporal

if TYPE_CHECKING:
    from archive_pipeline.core.embedders import ClipSettings

MODES = ("text", "vector", "hybrid")
VECTOR_LISTS = ("vector", "image")  # ranked lists the relevance floor applies to
SCORE_MEANINGS = {
    "bm25_relative": "BM25 score divided by the best hit's (1.0: the best word match)",
    "cosine": "cosine similarity of query and document vectors (-1..1)",
    "rrf_normalised": "reciprocal rank fusion sum / its maximum (1.0: first in every list); "
    "equal sums are ordered by the retrievers' own scores",
}
MAX_QUERY_CHARS = 1000
MAX_LIMIT = 300
VECTOR_MODEL_COLUMNS = (("vector", "model_id"), ("image_vector", "image_model_id"))
# a hit found only by its keyframe image needs this image-text cosine: CLIP models' sit lower
# (matching pairs ~0.25-0.35, unrelated ~0.1-0.2 for ViT-B-32 as commonly reported); not
# measured here, where no OpenCLIP weights exist
MIN_IMAGE_SIMILARITY = 0.2
QUERY_CACHE = 1024  # query vectors kept (LRU, by model and text)
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. 2009; LanceDB's RRFReranker default)
COLUMNS = [
    "row_id",
    "kind",
    "uri",
    "media_id",
    "decade",
    "title",
    "start_s",
    "end_s",
    "time_s",
    "speaker",
    "speaker_name",
    "text",
    "language",
    "ocr_text",
    "keyframe_id",
    "page",
    "region",
]


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


def reciprocal_rank_fusion(
    ranked: dict[str, list[str]], *, k: int = RRF_K
) -> list[tuple[str, float, dict[str, int]]]:
    """Fuse ranked id lists: score = sum over lists of 1 / (k + rank). Returns (id, score,
    {list: rank}) best first; ties keep the order of first appearance."""
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ids in ranked.items():
        for rank, item in enumerate(ids, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(item, {})[name] = rank
    order = sorted(scores, key=lambda item: -scores[item])
    return [(item, scores[item], ranks[item]) for item in order]


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


def build_filter(
    decades: tuple[str, ...] | None,
    kinds: tuple[str, ...] | None,
    speaker: str | None,
    languages: tuple[str, ...] | None = None,
) -> str | None:
    """The Lance SQL prefilter for the filters given."""
    parts = []
    if languages:
        parts.append(f"language IN ({', '.join(sql_literal(code) for code in languages)})")
    if decades:
        parts.append(f"decade IN ({', '.join(sql_literal(d) for d in decades)})")
    if kinds:
        parts.append(f"kind IN ({', '.join(sql_literal(k) for k in kinds)})")
    if speaker:
        who = sql_literal(speaker.lower())
        parts.append(f"(lower(speaker_name) = {who} OR lower(speaker) = {who})")
    return " AND ".join(parts) or None


SHORT_DOCUMENT_WORDS = 3  # fewer words: a fragment ("Hmm", "Und"), ranked after sentences


def _screened(rows: list[dict], parsed: ParsedQuery, name: str) -> list[dict]:
    """A ranked list with the query's syntax applied to every retriever (a vector hit must hold
    the required phrases and none of the excluded terms too), and fragments of fewer than
    SHORT_DOCUMENT_WORDS words after the documents with words to read (BM25's length
    normalisation and a short text's vague vector otherwise put "Hmm" first), unless the
    fragment holds every word of the query. Title matches are left as they are."""
    if name == "title":
        return rows
    if parsed.has_operators:
        rows = [row for row in rows if satisfies(row["text"] or "", parsed)]
    wanted = [stems(w) for term in parsed.terms if not term.prefix for w in term.words]

    def fragment(row: dict) -> bool:
        found = words(row["text"] or "")
        if len(found) >= SHORT_DOCUMENT_WORDS:
            return False
        held = set().union(*(stems(w) for w in found)) if found else set()
        return not (wanted and all(stem_set & held for stem_set in wanted))

    return sorted(rows, key=fragment)  # stable: each part keeps its order


def _and(*parts: str | None) -> str | None:
    return " AND ".join(p for p in parts if p) or None


class QueryBatcher:
    """Embeds the queries of concurrent callers in batches: the first caller embeds what is
    waiting, the others wait and one of them takes the next batch. A batch of 32 short texts
    costs the multilingual USE about what 2-3 single ones do (a fixed cost per call), so a
    service under load embeds many times more queries per second; one caller alone waits for
    nobody."""

    def __init__(self, embed_many: Any, *, max_batch: int = 64) -> None:
        self._embed_many = embed_many
        self._max_batch = max_batch
        self._ready = threading.Condition()
        self._waiting: list[tuple[str, dict]] = []
        self._busy = False
        self.calls = 0  # model calls made
        self.largest = 0  # most texts in one call

    def embed(self, text: str) -> np.ndarray:
        """The vector of one text."""
        slot: dict[str, Any] = {}
        with self._ready:
            self._waiting.append((text, slot))
            while not slot:
                if self._busy:
                    self._ready.wait()
                    continue
                self._busy = True
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self._ready.release()
                try:
                    vectors = self._embed_many([t for t, _ in batch])
                    for (_, waiting), vector in zip(batch, vectors, strict=True):
                        waiting["vector"] = vector
                except BaseException as exc:  # every caller of the batch gets the error
                    for _, waiting in batch:
                        waiting["error"] = exc
                finally:
                    self._ready.acquire()
                    self.calls += 1
                    self.largest = max(self.largest, len(batch))
                    self._busy = False
                    self._ready.notify_all()
        if "error" in slot:
            raise slot["error"]
        return slot["vector"]


@dataclass
class TitleIndex:
    """Words of each item's title and file name (path under the store root), for matching
    the query's words; prefix lookups for words of 4+ letters ("bunn" finds "bunny")."""

    postings: dict[str, set[str]]  # word -> media_ids
    sorted_words: list[str]
    decade_of: dict[str, str]
    length: dict[str, int]  # words in the item's title and file name

    @classmethod
    def build(cls, rows: list[dict]) -> TitleIndex:
        """From media_catalog rows (media_id, decade, title, store_key)."""
        postings: dict[str, set[str]] = {}
        decade_of, length = {}, {}
        for row in rows:
            media = row["media_id"]
            if not media:
                continue
            found = set(words(f"{row['title'] or ''} {row['store_key'] or ''}"))
            for word in found:
                postings.setdefault(word, set()).add(media)
            decade_of[media] = row["decade"]
            length[media] = len(found)
        return cls(postings, sorted(postings), decade_of, length)

    def _with(self, word: str) -> set[str]:
        found = set(self.postings.get(word, ()))
        if len(word) >= 4:
            at = bisect.bisect_left(self.sorted_words, word)
            while at < len(self.sorted_words) and self.sorted_words[at].startswith(word):
                found |= self.postings[self.sorted_words[at]]
                at += 1
        return found

    def match(self, query: str, decades: tuple[str, ...] | None = None) -> list[str]:
        """media_ids whose title or file name holds at least half of the query's words (stop
        words aside), most words held first, then the shortest title."""
        wanted = [w for w in dict.fromkeys(words(query)) if w not in ALL_STOP_WORDS]
        if not wanted:
            return []
        held: dict[str, int] = {}
        for word in wanted:
            for media in self._with(word):
                held[media] = held.get(media, 0) + 1
        need = max(1, (len(wanted) + 1) // 2)
        chosen = [
            m
            for m, n in held.items()
            if n >= need and (not decades or self.decade_of.get(m) in decades)
        ]
        return sorted(chosen, key=lambda m: (-held[m], self.length[m], m))


class Searcher:
    """Searches one warehouse's search_documents; loads the query embedder on first vector use."""

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

        self.warehouse = warehouse
        self.clip = clip or ClipSettings()
        self.min_similarity = min_similarity
        self.min_image_similarity = min_image_similarity
        self.nprobes = nprobes
        self.ef = ef
        self.refine_factor = refine_factor
        self.refresh_s = refresh_s  # a long-lived searcher sees new commits this much later
        self._db = None  # the connection of `table` (and of the keyframes' thumbnails)
        self._table = None
        self._others: dict[str, Any] = {}  # other tables, by name (catalogue, keyframes)
        self._embedder = embedder
        self._batcher: QueryBatcher | None = None
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # LRU
        self._lock = threading.RLock()  # lazy opening and the embedder, for threaded servers
        self._titles: tuple[int, TitleIndex] | None = None
        self._known: dict[str, tuple[int, list[str]]] = {}  # column -> (version, values)
        self._vector_models: tuple[int, dict[str, set[str]]] | None = None
        self._fts_indexed: tuple[int, list[str] | str] | None = None
        self._words: tuple[int, tuple[list[str], dict[str, int]]] | None = None
        self._version: tuple[float, int] | None = None  # (when asked, version)
        self._columns: tuple[int, list[str]] | None = None

    @property
    def table(self):
        """The search_documents table (error when it was never materialised)."""
        if self._table is None:
            with self._lock:
                self._open()
        return self._table

    def _open(self) -> None:
        if self._table is None:
            import datetime as dt

            import lancedb

            if self.warehouse.read_only:
                try:
                    self.warehouse.require()
                except WarehouseMissingError as exc:
                    raise SearchUnavailable(str(exc)) from None
            if TABLE not in self.warehouse.table_names():
                raise SearchUnavailable(
                    f"no {TABLE} table in {self.warehouse.root}: materialise the search_documents "
                    "asset (make demo, or archive-pipeline run) first"
                )
            self._db = lancedb.connect(
                self.warehouse.root,
                storage_options=self.warehouse.storage_options or None,
                read_consistency_interval=dt.timedelta(seconds=self.refresh_s),
            )
            self._table = self._db.open_table(TABLE)

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

    def vector_models(self) -> dict[str, set[str]]:
        """{vector column: model ids in the table}, read again when the table has a new version.
        Only the id columns are read: `model_id` is the text model of `vector` on every row and
        `image_model_id` is set exactly where `image_vector` is, while an `IS NOT NULL` filter on
        a vector column would read that whole column (10x the time of the id column)."""
        version = self.version()
        if self._vector_models is None or self._vector_models[0] != version:
            import pyarrow.compute as pc

            ids = self.table.to_lance().to_table(columns=[m for _, m in VECTOR_MODEL_COLUMNS])
            self._vector_models = (
                version,
                {
                    column: set(pc.unique(ids.column(model)).to_pylist()) - {None}
                    for column, model in VECTOR_MODEL_COLUMNS
                },
            )
        return self._vector_models[1]

    def version(self) -> int:
        """The table's version, asked at most once a second (each ask is a call into LanceDB's
        event loop; the table itself is re-read every `refresh_s`)."""
        now = time.monotonic()
        if self._version is None or now - self._version[0] > min(1.0, self.refresh_s):
            self._version = (now, self.table.version)
        return self._version[1]

    def columns(self) -> list[str]:
        """COLUMNS that the table has (one assembled before `page`/`region` lacks them until its
        decade runs again), read once per table version."""
        version = self.version()
        if self._columns is None or self._columns[0] != version:
            names = set(self.table.schema.names)
            self._columns = (version, [c for c in COLUMNS if c in names])
        return self._columns[1]

    def _fts_columns(self) -> list[str] | str:
        """The per-language full-text columns (each analysed in its language) when they are
        indexed and every row has its text in one of them; else `text` (rows assembled before
        they existed, until their decade runs again). Checked once per table version."""
        version = self.version()
        if self._fts_indexed is None or self._fts_indexed[0] != version:
            indexed = {ix.columns[0] for ix in self.table.list_indices()}
            columns: list[str] | str = [c for c in FTS_LANGUAGES if c in indexed]
            if len(columns) < len(FTS_LANGUAGES) or self.table.count_rows(
                " AND ".join(f"{c} IS NULL" for c in FTS_LANGUAGES)
            ):
                columns = "text"
            self._fts_indexed = (version, columns)
        return self._fts_indexed[1]

    def _fts(self, parsed: ParsedQuery, where: str | None, k: int) -> list[dict]:
        """BM25 hits of the parsed query (search/syntax.py) in the language columns. An index
        built before phrases were searched has no positions: a phrase then needs its words, and
        `_screened` checks their order on the rows (as it checks every list's rows)."""
        found = self._fts_columns()
        columns = {"text": "English"} if found == "text" else {c: FTS_LANGUAGES[c] for c in found}
        plain = plain_words(parsed)
        if plain is not None:  # no syntax: one multi-column match (4x faster than a boolean)
            return self._run_fts(plain, where, k, fts_columns=list(columns))
        phrases = found != "text"
        while True:
            query = fts_query(parsed, columns, expand=self.expand_prefix, phrases=phrases)
            if query is None:  # stop words only, or a prefix no word of the archive has
                return []
            try:
                return self._run_fts(query, where, k)
            except ValueError as exc:
                if not phrases or "position" not in str(exc):
                    raise
                phrases = False

    def _run_fts(self, query, where: str | None, k: int, **options) -> list[dict]:
        """The rows of one full-text query (text or a LanceDB query object), `_similarity` its
        BM25 score."""
        search = self.table.search(query, query_type="fts", **options)
        if where:
            search = search.where(where, prefilter=True)
        rows = search.select([*self.columns(), "_score"]).limit(k).to_arrow().to_pylist()
        for row in rows:
            row["_similarity"] = row.pop("_score")
        return rows

    def expand_prefix(self, prefix: str) -> list[str]:
        """The archive's words beginning with `prefix`, the PREFIX_EXPANSIONS most frequent."""
        vocabulary, counts = self._vocabulary()
        at = bisect.bisect_left(vocabulary, prefix)
        found = []
        while at < len(vocabulary) and vocabulary[at].startswith(prefix):
            found.append(vocabulary[at])
            at += 1
        return sorted(found, key=lambda w: -counts[w])[:PREFIX_EXPANSIONS]

    def _vocabulary(self) -> tuple[list[str], dict[str, int]]:
        """The words of the documents' text (sorted) and their counts, read once per table
        version, on the first prefix query (a vectorised pass over `text`: seconds at 1M
        rows)."""
        version = self.version()
        if self._words is None or self._words[0] != version:
            import pyarrow.compute as pc

            texts = self.table.to_lance().to_table(columns=["text"]).column("text")
            tokens = pc.list_flatten(
                pc.split_pattern_regex(pc.utf8_lower(texts), pattern=r"[^\p{L}\p{N}]+")
            )
            counted = pc.value_counts(tokens)
            counts = dict(
                zip(
                    counted.field("values").to_pylist(),
                    counted.field("counts").to_pylist(),
                    strict=True,
                )
            )
            counts.pop("", None)
            self._words = (version, (sorted(counts), counts))
        return self._words[1]

    def _vector(self, vector: np.ndarray, column: str, where: str | None, k: int) -> list[dict]:
        query = (
            self.table.search(vector, vector_column_name=column)
            .distance_type("cosine")
            .nprobes(self.nprobes)
            .ef(max(self.ef, k * (self.refine_factor or 1)))  # HNSW needs ef >= candidates
            .select([*self.columns(), column, "_distance"])
            .limit(k)
        )
        if where:
            query = query.where(where, prefilter=True)
        if self.refine_factor:
            query = query.refine_factor(self.refine_factor)
        rows = [row for row in query.to_arrow().to_pylist() if row[column] is not None]
        for row in rows:  # cosine similarity from the stored (unit) vectors, index or not
            row["_similarity"] = float(np.dot(vector, np.asarray(row.pop(column), np.float32)))
        return sorted(rows, key=lambda r: -r["_similarity"])

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
            where = _and(where, f"media_id IN ({', '.join(sql_literal(m) for m in media_ids)})")
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
        ranked = {name: _screened(rows, parsed, name) for name, rows in ranked.items()}
        ordered, below_floor = self._rank(ranked, limit, fusing)
        if below_floor:
            notes.append(
                f"{below_floor} hit(s) left out: their only match was a vector similarity below "
                f"the relevance floor ({self.min_similarity:g})"
            )
        hits = [
            # a document found by its item's title alone plays from the start of its span
            self._hit(
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
            self._attach_thumbnails(hits)
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

    def _rank(
        self, ranked: dict[str, list[dict]], limit: int, fusing: bool
    ) -> tuple[list[tuple[dict, float, float, dict[str, int]]], int]:
        """(row, normalised score, raw score, {list: rank}) best first, and how many of the top
        `limit` were left out by the relevance floor (vector-only hits below it)."""
        floored = {
            name: [r for r in rows if name not in VECTOR_LISTS or self._above_floor(name, r)]
            for name, rows in ranked.items()
        }
        if not fusing:
            ((name, rows),) = ranked.items()
            kept = floored[name][:limit]
            best = max((r["_similarity"] for r in kept), default=0.0)
            ordered = [
                (
                    row,
                    row["_similarity"] if name in VECTOR_LISTS else row["_similarity"] / best,
                    row["_similarity"],
                    {name: i},
                )
                for i, row in enumerate(kept, 1)
            ]
            return ordered, min(limit, len(rows)) - len(kept)
        rows_by_id = {row["row_id"]: row for rows in ranked.values() for row in rows}

        def fuse(lists):
            return reciprocal_rank_fusion({n: [r["row_id"] for r in v] for n, v in lists.items()})

        # equal fused scores (first in one list each) are ordered by the retrievers' own
        # scores relative to their best, so a strong match is not left to list order
        strength: dict[str, float] = {}
        for rows in floored.values():
            top = max((abs(r["_similarity"]) for r in rows), default=0.0) or 1.0
            for r in rows:
                strength[r["row_id"]] = strength.get(r["row_id"], 0.0) + r["_similarity"] / top
        fused = sorted(fuse(floored), key=lambda f: (-f[1], -strength.get(f[0], 0.0)))[:limit]
        unfloored = {item for item, _, _ in fuse(ranked)[:limit]}
        best = len(ranked) / (RRF_K + 1)  # first in every list searched
        ordered = [(rows_by_id[item], score / best, score, ranks) for item, score, ranks in fused]
        return ordered, len(unfloored - {item for item, _, _ in fused})

    def _above_floor(self, name: str, row: dict) -> bool:
        floor = self.min_image_similarity if name == "image" else self.min_similarity
        return row["_similarity"] >= floor

    def known_speakers(self) -> list[str]:
        """The speaker names in the table (catalogue names, not labels), read once per
        table version."""
        return self.known_values("speaker_name")

    def known_values(self, column: str) -> list[str]:
        """The distinct values of a column (decade, language, speaker_name), sorted; read once
        per table version."""
        version = self.version()
        held = self._known.get(column)
        if held is None or held[0] != version:
            import pyarrow.compute as pc

            values = self.table.to_lance().to_table(
                columns=[column], filter=f"{column} IS NOT NULL"
            )
            unique = pc.unique(values.column(column)).to_pylist()
            self._known[column] = (version, sorted(unique, key=str.casefold))
        return self._known[column][1]

    def open_table(self, name: str):
        """Another table of the warehouse through this searcher's connection (opened once,
        seeing new commits as `table` does), or None while it does not exist."""
        _ = self.table  # the connection
        if name not in self._others:
            try:
                self._others[name] = self._db.open_table(name)
            except (ValueError, FileNotFoundError):
                return None
        return self._others[name]

    def _title_index(self) -> TitleIndex:
        """Titles and file names of the catalogue, read again when it has a new version."""
        catalog = self.open_table("media_catalog")
        if catalog is None:
            return TitleIndex.build([])
        version = catalog.version
        if self._titles is None or self._titles[0] != version:
            rows = catalog.to_lance().to_table(columns=["media_id", "decade", "title", "store_key"])
            self._titles = (version, TitleIndex.build(rows.to_pylist()))
        return self._titles[1]

    def _title_matches(
        self, text: str, where: str | None, decades: tuple[str, ...] | None, k: int
    ) -> list[dict]:
        """The first document (earliest, within the filters) of each of the `k` items whose
        title or file name holds most of the query's words, best match first (a word common to
        many file names reads the documents of `k` items, not of all of them)."""
        media = self._title_index().match(text, decades)[:k]
        if not media:
            return []
        listed = ", ".join(sql_literal(m) for m in media)
        rows = (
            self.table.to_lance()
            .to_table(columns=self.columns(), filter=_and(f"media_id IN ({listed})", where))
            .to_pylist()
        )
        first: dict[str, dict] = {}
        for row in rows:
            held = first.get(row["media_id"])
            # the earliest span; a keyframe (with its picture) before speech starting with it
            if held is None or (row["start_s"], row["kind"]) < (held["start_s"], held["kind"]):
                first[row["media_id"]] = row
        found = [first[m] for m in media if m in first]
        for row in found:
            row["_similarity"] = 1.0
        return found

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
            vector_where = _and(where, f"model_id = {sql_literal(model)}")
        vector = self.embed(text) if vector is None else np.asarray(vector, np.float32)
        lists = {"vector": self._vector(vector, "vector", vector_where, k)}
        if images:
            image_where = where
            if len(models["image_vector"]) > 1:
                image_where = _and(where, f"image_model_id = {sql_literal(model)}")
            lists["image"] = self._vector(vector, "image_vector", image_where, k)
            notes.append("keyframe images searched with the query text (image-text model)")
        return lists

    def _hit(
        self, rank: int, row: dict, score: float, raw: float, ranks: dict[str, int], text: str
    ) -> SearchHit:
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

    def _attach_thumbnails(self, hits: list[SearchHit]) -> None:
        ids = sorted({hit.keyframe_id for hit in hits if hit.keyframe_id})
        if not ids:
            return
        keyframes = self.open_table("keyframes")  # the thumbnails are there
        if keyframes is None:
            return
        listed = ", ".join(sql_literal(i) for i in ids)
        rows = keyframes.to_lance().to_table(
            columns=["row_id", "thumbnail"], filter=f"row_id IN ({listed})"
        )
        found = dict(
            zip(
                rows.column("row_id").to_pylist(), rows.column("thumbnail").to_pylist(), strict=True
            )
        )
        for hit in hits:
            hit.thumbnail = found.get(hit.keyframe_id)


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
