"""The ranked lists a search fuses, read from `search_documents`: BM25 full text (the language
columns, the query syntax), vectors (text, and keyframe images), and media titles and file
names; what they read besides the rows is cached per table version. Also the Lance prefilter
of a search's filters and the batching of concurrent query embeddings."""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from archive_pipeline.core.sql import sql_in
from archive_pipeline.core.warehouse import Warehouse, WarehouseMissingError, sql_literal
from archive_pipeline.search.hits import SearchUnavailable
from archive_pipeline.search.indexes import FTS_LANGUAGES, TABLE
from archive_pipeline.search.syntax import (
    ALL_STOP_WORDS,
    PREFIX_EXPANSIONS,
    ParsedQuery,
    fts_query,
    plain_words,
    words,
)

VECTOR_MODEL_COLUMNS = (("vector", "model_id"), ("image_vector", "image_model_id"))
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


def and_where(*parts: str | None) -> str | None:
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


class Retrievers:
    """One warehouse's search_documents table and the ranked lists read from it."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        nprobes: int = 20,
        ef: int = 160,
        refine_factor: int | None = 4,
        refresh_s: float = 10.0,
    ) -> None:
        self.warehouse = warehouse
        self.nprobes = nprobes
        self.ef = ef
        self.refine_factor = refine_factor
        self.refresh_s = refresh_s  # a long-lived searcher sees new commits this much later
        self._db = None  # the connection of `table` (and of the keyframes' thumbnails)
        self._table = None
        self._others: dict[str, Any] = {}  # other tables, by name (catalogue, keyframes)
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
        rows = (
            self.table.to_lance()
            .to_table(columns=self.columns(), filter=and_where(sql_in("media_id", media), where))
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
