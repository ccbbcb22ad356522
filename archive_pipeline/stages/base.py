"""Run one stage over one decade: cache plan, compute (Ray or inline), rows and failures, commit.

Every stage asset goes through `process_partition`, so the incremental cache (DESIGN §5), the
failure handling (§9) and the write semantics (§4) are implemented once. The `stage_items`
ledger records each item's cache key and status, so an item whose result is empty (silence,
no speech) is a cache hit too.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import pyarrow as pa

from archive_pipeline import PIPELINE_VERSION
from archive_pipeline.core.cache import cache_key, canonical_json
from archive_pipeline.core.compute import Compute, ItemOutcome, Stage
from archive_pipeline.core.errors import is_permanent
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.progress import ItemProgress, ProgressLog
from archive_pipeline.core.sql import pair_in, sql_in, sql_literal
from archive_pipeline.schemas import COMMON_COLUMNS, TABLES

if TYPE_CHECKING:  # the warehouse (lancedb) is driver-side only: keep it out of Ray workers
    from archive_pipeline.core.guard import RemovalGuard
    from archive_pipeline.core.warehouse import Warehouse, WriteResult


T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
FAILURES_TABLE = "failures"
LEDGER_TABLE = "stage_items"


@dataclass(frozen=True)
class ItemFailure:
    """A stage's own verdict that an item cannot be processed (errors as data)."""

    error_class: str
    message: str
    media_id: str | None = None


class LoadsModels:
    """Mixin for stages that load models in setup(): pickling (to ship the stage to Ray
    workers) drops the loaded objects, so each worker loads its own."""

    _loaded: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self._loaded:
            state[name] = None
        return state


@dataclass(frozen=True)
class ItemRef:
    """How a stage's item is named in the failures table and the ledger."""

    uri: str
    store_key: str | None
    media_id: str | None
    duration_s: float | None = None


@dataclass(frozen=True)
class CatalogItem:
    """A catalogued media item as the model stages see it (one per content in a decade)."""

    uri: str
    store_key: str
    media_id: str
    sha256: str
    duration_s: float | None
    language: str | None = None
    speakers: tuple[str, ...] = ()
    kind: str = "video"  # 'audio', 'video' or 'image' (a still: photo, scan, multi-page TIFF)

    @property
    def ref(self) -> ItemRef:
        """How the item is named in failures and the ledger."""
        return ItemRef(self.uri, self.store_key, self.media_id, self.duration_s)


Skipped = list[tuple[str, str]]  # (store_key, reason)


def catalog_items(catalog: pa.Table, *, needs: str) -> tuple[list[CatalogItem], Skipped]:
    """The decade's items a stage can use, one per content, and (store_key, reason) of every
    other item: `needs` 'audio' (an audio stream) or 'visual' (a video stream or a still)."""
    if needs not in ("audio", "visual"):
        raise ValueError(f"needs must be 'audio' or 'visual', not {needs!r}")
    items: dict[str, CatalogItem] = {}
    skipped = []
    for row in sorted(catalog.to_pylist(), key=lambda r: r["store_key"]):
        if needs == "audio" and row["kind"] == "image":
            skipped.append((row["store_key"], "still image: no audio"))
            continue
        if needs == "audio" and not row["n_audio_streams"]:
            skipped.append((row["store_key"], "video without an audio stream"))
            continue
        if needs == "visual" and row["kind"] not in ("video", "image"):
            skipped.append((row["store_key"], "audio only: no video stream"))
            continue
        if row["media_id"] in items:
            skipped.append((row["store_key"], f"same content as {items[row['media_id']].uri}"))
            continue
        items[row["media_id"]] = CatalogItem(
            uri=row["uri"],
            store_key=row["store_key"],
            media_id=row["media_id"],
            sha256=row["sha256"],
            duration_s=row["duration_s"],
            language=row["language"] or None,
            speakers=tuple(row["speakers"] or ()),
            kind=row["kind"],
        )
    return list(items.values()), skipped


@dataclass
class PartitionReport(Generic[T]):
    """What one stage did for one decade (rendered into Dagster metadata). Holds counts and
    the commits, never the decade's rows: read those from the warehouse (`read`)."""

    stage: str
    decade: str
    n_items: int
    n_reused: int
    n_computed: int
    n_failed: int
    writes: dict[str, WriteResult]  # per table the stage writes: the decade's rows, last commit
    failures_write: WriteResult
    seconds: float
    compute_seconds: float
    item_seconds: float
    computed_media_s: float
    cache_keys: tuple[str, ...]  # the decade's items' 'uri key', sorted (its data version)
    batches: int
    warehouse: Warehouse
    n_copied: int = 0  # items whose content was done in another decade: rows copied

    @property
    def write(self) -> WriteResult:
        """The commit of the stage's (first) table."""
        return next(iter(self.writes.values()))

    def read(
        self,
        table: str | None = None,
        *,
        columns: list[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """The decade's committed rows of `table` (default: the stage's first), some columns,
        or the first `limit` rows: metadata reads only what it shows."""
        name = table or self.write.table
        return self.warehouse.read(name, {"decade": self.decade}, columns=columns, limit=limit)

    @property
    def failure_fraction(self) -> float:
        """Failed items over all items of the decade (0 when there are none)."""
        return self.n_failed / self.n_items if self.n_items else 0.0

    @property
    def real_time_factor(self) -> float | None:
        """Seconds of media processed per second of compute, over the computed items."""
        return self.computed_media_s / self.compute_seconds if self.compute_seconds else None


def common_values(stage: Any, *, decade: str, key: str, now: dt.datetime) -> dict[str, Any]:
    """The columns every table carries, for one item computed now by `stage`."""
    return {
        "decade": decade,
        "cache_key": key,
        "model_id": stage.model_id,
        "model_params": canonical_json(stage.params),
        "pipeline_version": PIPELINE_VERSION,
        "created_at": now,
    }


def stage_cache_key(stage: Any, content_id: str) -> str:
    """Cache key of one item's content for this stage configuration."""
    return cache_key(
        content_id=content_id,
        stage=stage.name,
        model_id=stage.model_id,
        params=stage.params,
        code_version=stage.code_version,
    )


# One item's result as rows: {table: rows}, each row the values of that table's Arrow schema in
# `schemas.TABLES` (checked when the batch is committed: a missing or mistyped column fails it).
TableRows = dict[str, list[dict[str, Any]]]


class PartitionStage(Stage, Protocol[T_contra]):
    """What `process_partition` needs of a stage: `setup()`/`process()` (`Stage`), the
    tables it writes, its cache identity (model id, result-changing params, code version, the
    item's content id) and how an item's result becomes rows."""

    tables: tuple[str, ...]
    model_id: str
    params: Any

    def content_id(self, item: T_contra) -> str:
        """What the item's result depends on besides the stage configuration."""

    def rows(self, item: T_contra, value: Any, *, decade: str) -> TableRows:
        """{table: rows} of one item's result."""


def outcome_error(outcome: ItemOutcome) -> tuple[str, str] | None:
    """(error class, message) of a failed item, whether the stage returned an ItemFailure or
    raised; None when it succeeded."""
    if isinstance(outcome.value, ItemFailure):
        return outcome.value.error_class, outcome.value.message
    if not outcome.ok:
        return outcome.error_class or "Error", outcome.message or ""
    return None


def item_ref(stage: Any, item: Any) -> ItemRef:
    """How the item is named in failures and the ledger (the stage's `ref`, else `item.ref`)."""
    ref = getattr(stage, "ref", None)
    return ref(item) if ref is not None else item.ref


def row_values(rows: pa.Table, order: str) -> list[dict[str, Any]]:
    """One item's rows of a table back as the values `rows()` built them from (for a stage's
    `value_from_rows`): sorted by the `order` column, without it and the identity and common
    columns (row_id, media_id, uri, decade, cache_key...)."""
    skip = {*IDENTITY_COLUMNS, order}
    listed = sorted(rows.to_pylist(), key=lambda row: row[order])
    return [{k: v for k, v in row.items() if k not in skip} for row in listed]


IDENTITY_COLUMNS = frozenset({*(f.name for f in COMMON_COLUMNS), "row_id", "media_id", "uri"})


def _done_elsewhere(
    stage: Any,
    decade: str,
    wanted: Sequence[str],
    warehouse: Warehouse,
    *,
    exclude: set[tuple[str, str]],
) -> dict[str, tuple[str, str]]:
    """{cache key: (decade, uri) of an item done with it under another URI} (another decade,
    or this one before a move or rename) for the keys a stage can rebuild its result of from
    its rows (`value_from_rows`); else nothing. `exclude`: (uri, key) pairs not to use (the
    items to do, whose rows are not there)."""
    if not wanted or getattr(stage, "value_from_rows", None) is None:
        return {}
    where = (
        f"stage = {sql_literal(stage.name)} AND status = 'ok'"
        f" AND {sql_in('cache_key', sorted(set(wanted)))}"
    )
    found = warehouse.read(LEDGER_TABLE, filter=where, columns=["decade", "uri", "cache_key"])
    done: dict[str, tuple[str, str]] = {}
    for row in sorted(found.to_pylist(), key=lambda r: (r["decade"] == decade, r["uri"])):
        if (row["uri"], row["cache_key"]) not in exclude:
            done.setdefault(row["cache_key"], (row["decade"], row["uri"]))
    return done


def _rows_missing(
    warehouse: Warehouse,
    tables: Sequence[str],
    decade: str,
    ledger: Sequence[dict[str, Any]],
    items: set[tuple[str, str]],
) -> set[tuple[str, str]]:
    """(uri, cache key) of the `items` the ledger says are done with rows whose rows are not
    all in the stage's tables (a table dropped, a data file lost): recomputed. One row count
    per table when everything is there; the keys of the decade's rows only when it is short."""
    vouched = [r for r in ledger if r["status"] == "ok" and (r["n_rows"] or 0) > 0]
    if not vouched:
        return set()
    scope = {"decade": decade}
    expected = sum(r["n_rows"] for r in vouched)
    names = set(warehouse.table_names())
    existing = [name for name in tables if name in names]  # (a dropped table counts 0)
    for name in existing:  # a lost or truncated data file: DamagedTableError naming the repair
        warehouse.verify(name)
    if sum(warehouse.count(name, scope) for name in existing) >= expected:
        return set()
    found: dict[tuple[str, str], int] = {}
    for name in existing:
        keys = warehouse.read(name, scope, columns=["uri", "cache_key"])
        counted = keys.group_by(["uri", "cache_key"]).aggregate([("uri", "count")])
        for row in counted.to_pylist():
            pair = (row["uri"], row["cache_key"])
            found[pair] = found.get(pair, 0) + row["uri_count"]
    return {
        (r["uri"], r["cache_key"])
        for r in vouched
        if found.get((r["uri"], r["cache_key"]), 0) < r["n_rows"]
        and (r["uri"], r["cache_key"]) in items
    }


class _Batch:
    """The rows, failures and ledger entries of the items finished since the last commit."""

    def __init__(self, tables: Sequence[str]) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
        self.failures: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self.items = 0
        self.media_s = 0.0

    def commit(self, warehouse: Warehouse, *, decade: str, stage_name: str) -> dict:
        """Write the batch: the stage's tables, then failures, then the ledger (last: an "ok"
        entry means the item's rows are committed). Each table is one atomic commit."""
        writes = {}
        for name, rows in self.rows.items():
            table = pa.Table.from_pylist(rows, schema=TABLES[name].schema)
            writes[name] = warehouse.upsert(name, table, scope={"decade": decade})
        scope = {"decade": decade, "stage": stage_name}
        failures = pa.Table.from_pylist(self.failures, schema=TABLES[FAILURES_TABLE].schema)
        writes[FAILURES_TABLE] = warehouse.upsert(FAILURES_TABLE, failures, scope=scope)
        # an item now ok loses its failure row (its row_id is the stage and the URI)
        ok_uris = [r["uri"] for r in self.ledger if r["status"] == "ok"]
        if ok_uris:
            warehouse.delete_where(FAILURES_TABLE, scope, sql_in("uri", ok_uris))
        ledger = pa.Table.from_pylist(self.ledger, schema=TABLES[LEDGER_TABLE].schema)
        warehouse.upsert(LEDGER_TABLE, ledger, scope=scope)
        return writes


def process_partition(
    *,
    stage: PartitionStage[T],
    decade: str,
    items: Sequence[T],
    warehouse: Warehouse,
    compute: Compute,
    log: ProgressLog | None = None,
    removal_guard: RemovalGuard | None = None,
    writer: str | None = None,
) -> PartitionReport[T]:
    """Reuse cached items, compute the rest as a stream, and commit finished items in batches
    (`warehouse.commit_every_items` items, `commit_every_media_h` hours of media or
    `commit_every_s` seconds, whichever comes first), so a
    killed run loses at most the batch in flight and the re-run resumes from the ledger. Once
    every item is done, rows of items no longer in the decade (or whose cache key changed)
    are deleted by key. Writes follow the change, never the decade's size.

    With `log`, one progress line per computed item as it finishes (n/N, file, seconds, ETA).
    The stage's (decade, stage) scope has one writer at a time: a second one waits for the
    warehouse's lease (naming `writer`, e.g. a run id), then fails naming the holder. Items the
    ledger vouches for whose rows are missing are computed again. With `removal_guard`, a run
    that would remove too much of the decade stops before removing anything."""
    what = writer or f"{stage.name} {decade}"
    wait = log.info if log is not None else None
    with warehouse.writer(decade, stage.name, what=what, on_wait=wait):
        return _process_partition(
            stage=stage,
            decade=decade,
            items=items,
            warehouse=warehouse,
            compute=compute,
            log=log,
            removal_guard=removal_guard,
        )


def _process_partition(
    *,
    stage: PartitionStage[T],
    decade: str,
    items: Sequence[T],
    warehouse: Warehouse,
    compute: Compute,
    log: ProgressLog | None,
    removal_guard: RemovalGuard | None,
) -> PartitionReport[T]:
    start = time.perf_counter()
    tables = list(stage.tables)
    scope = {"decade": decade, "stage": stage.name}
    # An item is known by its URI and its cache key: two items with the same content (the same
    # text in two recordings, a test card in two films) each get rows and a ledger entry, and
    # the content is computed once.
    refs = [item_ref(stage, item) for item in items]
    if len({ref.uri for ref in refs}) < len(refs):  # one URI is one item (one ledger entry)
        first = {ref.uri: i for i, ref in reversed(list(enumerate(refs)))}
        if log is not None:
            log.warning(
                f"{stage.name} {decade}: {len(refs) - len(first)} item(s) listed twice under "
                "one URI: each URI is processed once"
            )
        kept = sorted(first.values())
        items, refs = [items[i] for i in kept], [refs[i] for i in kept]
    keys = [stage_cache_key(stage, stage.content_id(item)) for item in items]
    for name in (LEDGER_TABLE, FAILURES_TABLE):
        warehouse.verify(name)
    ledger = warehouse.read(LEDGER_TABLE, scope).to_pylist()  # one entry per item: small
    # A repeated identical failure keeps its first rows (and time): re-runs stay idempotent.
    previous = {
        (row["uri"], row["cache_key"], row["error_class"], row["message"]): row
        for row in warehouse.read(FAILURES_TABLE, scope).to_pylist()
    }
    # failed before with an error these bytes will give again: not retried until the key changes
    settled = {(uri, key) for uri, key, error, _ in previous if is_permanent(error)}
    # the ledger vouches for rows: items whose rows are gone (a dropped table, a lost data
    # file) are done again
    pairs = {(ref.uri, key) for ref, key in zip(refs, keys, strict=True)}
    lost = _rows_missing(warehouse, tables, decade, ledger, pairs)
    if lost and log is not None:
        log.warning(
            f"{stage.name} {decade}: the rows of {len(lost)} item(s) the ledger lists as done are "
            f"missing from {', '.join(tables)} (e.g. {sorted(lost)[0][0].rsplit('/', 1)[-1]}): "
            "computed again"
        )
    done = {(r["uri"], r["cache_key"]) for r in ledger if r["status"] == "ok"} - lost | settled
    # (uri, cache key) of the items that failed: this run, or before with a permanent error
    failed: set[tuple[str, str]] = settled & pairs
    todo = [i for i, ref in enumerate(refs) if (ref.uri, keys[i]) not in done]
    sharing: dict[str, list[int]] = {}  # cache key -> the items to compute that have it
    for i in todo:
        sharing.setdefault(keys[i], []).append(i)
    units = [members[0] for members in sharing.values()]  # one computation per content
    # The same content already done in another decade: its rows there give the result.
    undone = {(refs[i].uri, keys[i]) for i in todo} | lost  # (no rows to copy from there)
    elsewhere = _done_elsewhere(stage, decade, [keys[i] for i in units], warehouse, exclude=undone)
    copies = [i for i in units if keys[i] in elsewhere]
    units = [i for i in units if keys[i] not in elsewhere]
    n_copied = sum(len(sharing[keys[i]]) for i in copies)

    if log is not None:
        shared = f" ({len(units)} distinct contents)" if len(units) < len(todo) - n_copied else ""
        found = f", {n_copied} done in another decade (copied)" if copies else ""
        bad = f" ({len(failed)} failed for good: retried when they change)" if failed else ""
        log.info(
            f"{stage.name} {decade}: {len(items)} item(s), {len(items) - len(todo)} unchanged "
            f"(cached){bad}{found}, {len(todo) - n_copied} to compute{shared}"
        )
    progress = ItemProgress(log, stage=stage.name, decade=decade, total=len(units))
    previous_ledger = {(row["uri"], row["cache_key"]): row for row in ledger}
    del ledger
    writes: dict[str, WriteResult | None] = dict.fromkeys([*tables, FAILURES_TABLE])
    media_s = item_seconds = 0.0
    batches = 0
    batch = _Batch(tables)
    last_commit = time.monotonic()

    def record(name: str, write: WriteResult) -> None:
        writes[name] = write if writes[name] is None else writes[name].then(write)

    def commit() -> None:
        nonlocal batch, last_commit, batches
        if batch.items:
            for name, write in batch.commit(
                warehouse, decade=decade, stage_name=stage.name
            ).items():
                record(name, write)
            batches += 1
        batch, last_commit = _Batch(tables), time.monotonic()

    def commit_if_due() -> None:
        if (
            batch.items >= warehouse.commit_every_items
            or batch.media_s >= warehouse.commit_every_media_h * 3600
            or time.monotonic() - last_commit >= warehouse.commit_every_s
        ):
            commit()

    def add(i: int, outcome: ItemOutcome, error: tuple[str, str] | None, now: dt.datetime) -> None:
        """Item i's rows (or failure) and ledger entry into the batch."""
        nonlocal media_s
        key, item, ref = keys[i], items[i], refs[i]
        common = common_values(stage, decade=decade, key=key, now=now)
        entry = {
            **common,
            "row_id": row_id(LEDGER_TABLE, stage.name, decade, ref.uri),
            "media_id": ref.media_id,
            "stage": stage.name,
            "uri": ref.uri,
            "media_duration_s": ref.duration_s,
        }
        batch.items += 1
        batch.media_s += ref.duration_s or 0.0
        if error is None:
            produced = stage.rows(item, outcome.value, decade=decade)
            for name, rows in produced.items():
                batch.rows[name].extend({**row, **common} for row in rows)
            n_rows = sum(len(rows) for rows in produced.values())
            batch.ledger.append(
                {**entry, "status": "ok", "n_rows": n_rows, "compute_s": outcome.seconds}
            )
            media_s += ref.duration_s or 0.0
            return
        error_class, message = error
        value = outcome.value
        media_id = (value.media_id if isinstance(value, ItemFailure) else None) or ref.media_id
        failure = {
            **common,
            "row_id": row_id(stage.name, ref.uri),
            "media_id": media_id,
            "stage": stage.name,
            "uri": ref.uri,
            "store_key": ref.store_key,
            "error_class": error_class,
            "message": message,
        }
        repeated = previous.get((ref.uri, key, error_class, message))
        batch.failures.append(repeated or failure)
        old = previous_ledger.get((ref.uri, key))
        batch.ledger.append(
            old
            if repeated and old and old["status"] == "failed"
            else {**entry, "status": "failed", "n_rows": 0, "compute_s": outcome.seconds}
        )
        failed.add((ref.uri, key))

    for i in copies:
        source_decade, source_uri = elsewhere[keys[i]]
        source = f"uri = {sql_literal(source_uri)} AND cache_key = {sql_literal(keys[i])}"
        found_rows = {
            t: warehouse.read(t, {"decade": source_decade}, filter=source) for t in tables
        }
        copied = ItemOutcome(index=-1, value=stage.value_from_rows(found_rows, items[i]))
        now = dt.datetime.now(dt.UTC)
        for j in sharing[keys[i]]:
            add(j, copied, None, now)
        commit_if_due()

    compute_start = time.perf_counter()
    durations = [refs[i].duration_s for i in units]
    for outcome in compute.stream(stage, [items[i] for i in units], durations=durations):
        unit = units[outcome.index]
        error = outcome_error(outcome)
        progress.item_done(
            refs[unit].uri.rsplit("/", 1)[-1],
            seconds=outcome.seconds,
            error=f"{error[0]}: {error[1]}" if error else None,
            detail=outcome.detail,
        )
        item_seconds += outcome.seconds
        now = dt.datetime.now(dt.UTC)
        for i in sharing[keys[unit]]:
            add(i, outcome, error, now)
        commit_if_due()
    commit()
    compute_seconds = time.perf_counter() - compute_start
    if log is not None and units:
        log.info(progress.summary())

    # The decade is complete: rows of items no longer in it, or whose key changed, go (by key;
    # and by URI and key where that key is still another item's).
    current = set(keys)
    still_failed = {(uri, key) for uri, key, _, _ in previous} <= settled & pairs
    if not todo and still_failed and set(previous_ledger) == pairs:
        # Nothing changed: no stale rows (rows a killed run committed without their ledger
        # entries belong to items computed again, so the run after it was not one of these).
        for name in tables:
            record(name, warehouse.unchanged(name, {"decade": decade}))
        record(FAILURES_TABLE, warehouse.unchanged(FAILURES_TABLE, scope))
    else:
        if removal_guard is not None:
            before = {uri for uri, _ in previous_ledger}
            removal_guard.check(warehouse, decade, before=sorted(before), now=[r.uri for r in refs])
        gone = sql_in("cache_key", sorted(current), negate=True)
        left = sorted(pair for pair in previous_ledger if pair not in pairs and pair[1] in current)
        if left:
            gone = f"({gone}) OR ({pair_in(left)})"
        for name in tables:
            record(name, warehouse.delete_where(name, {"decade": decade}, gone))
        not_failed = pair_in(sorted(failed), negate=True)
        record(FAILURES_TABLE, warehouse.delete_where(FAILURES_TABLE, scope, not_failed))
        warehouse.delete_where(LEDGER_TABLE, scope, gone)
    counted = {
        name: replace(
            write, rows=warehouse.count(name, {"decade": decade} if name in tables else scope)
        )
        for name, write in writes.items()
    }
    return PartitionReport(
        stage=stage.name,
        decade=decade,
        n_items=len(items),
        n_reused=len(items) - len(todo),
        n_computed=len(todo) - n_copied,
        n_copied=n_copied,
        n_failed=len(failed),
        writes={name: counted[name] for name in tables},
        failures_write=counted[FAILURES_TABLE],
        seconds=time.perf_counter() - start,
        compute_seconds=compute_seconds,
        item_seconds=item_seconds,
        computed_media_s=media_s,
        cache_keys=tuple(sorted(f"{uri} {key}" for uri, key in pairs - failed)),
        batches=batches,
        warehouse=warehouse,
    )
