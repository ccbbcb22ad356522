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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from archive_pipeline import PIPELINE_VERSION
from archive_pipeline.core.cache import cache_key, canonical_json
from archive_pipeline.core.compute import ItemOutcome, OnOutcome, Stage, run_inline
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.progress import ItemProgress, ProgressLog
from archive_pipeline.schemas import TABLES

if TYPE_CHECKING:  # the warehouse (lancedb) is driver-side only: keep it out of Ray workers
    from archive_pipeline.core.warehouse import Warehouse, WriteResult

T = TypeVar("T")
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


class Compute(Protocol):
    """Something that maps a stage over items: `RayRuntime` or `InlineCompute`."""

    def map(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        on_outcome: OnOutcome | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> list[ItemOutcome]: ...


class InlineCompute:
    """Runs stages in the calling process (debugging, and tests that are not about Ray)."""

    def map(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        on_outcome: OnOutcome | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> list[ItemOutcome]:
        """Process items one after another in this process (no time bound: debugging)."""
        return run_inline(stage, items, on_outcome=on_outcome) if items else []


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

    @property
    def ref(self) -> ItemRef:
        """How the item is named in failures and the ledger."""
        return ItemRef(self.uri, self.store_key, self.media_id, self.duration_s)


Skipped = list[tuple[str, str]]  # (store_key, reason)


def catalog_items(catalog: pa.Table, *, needs: str) -> tuple[list[CatalogItem], Skipped]:
    """The decade's items with an 'audio' or a 'video' stream, one per content, and
    (store_key, reason) for the audio/video items skipped."""
    items: dict[str, CatalogItem] = {}
    skipped = []
    for row in sorted(catalog.to_pylist(), key=lambda r: r["store_key"]):
        if row["kind"] == "image":
            continue
        if needs == "audio" and not row["n_audio_streams"]:
            skipped.append((row["store_key"], "video without an audio stream"))
            continue
        if needs == "video" and row["kind"] != "video":
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
        )
    return list(items.values()), skipped


@dataclass
class PartitionReport(Generic[T]):
    """What one stage did for one decade (rendered into Dagster metadata)."""

    stage: str
    decade: str
    n_items: int
    n_reused: int
    n_computed: int
    n_failed: int
    tables: dict[str, pa.Table]  # the decade's rows of every table the stage writes, in order
    writes: dict[str, WriteResult]
    failures: pa.Table
    failures_write: WriteResult
    seconds: float
    compute_seconds: float
    item_seconds: float
    computed_media_s: float

    @property
    def rows(self) -> pa.Table:
        """The decade's rows of the stage's (first) table."""
        return next(iter(self.tables.values()))

    @property
    def write(self) -> WriteResult:
        """The commit of the stage's (first) table."""
        return next(iter(self.writes.values()))

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


def _rows_with_keys(table: pa.Table, keys: set[str]) -> pa.Table:
    if not table.num_rows or not keys:
        return table.slice(0, 0)
    return table.filter(pc.is_in(table.column("cache_key"), value_set=pa.array(sorted(keys))))


class PartitionStage(Protocol):
    """What `process_partition` needs of a stage besides `setup()`/`process()`: its name, the
    tables it writes, its cache identity and how a result becomes rows."""

    name: str
    tables: tuple[str, ...]

    def content_id(self, item: Any) -> str:
        """What the item's result depends on besides the stage configuration."""

    def rows(self, item: Any, value: Any, *, decade: str) -> dict[str, list[dict[str, Any]]]:
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


def process_partition(
    *,
    stage: Any,
    decade: str,
    items: Sequence[T],
    warehouse: Warehouse,
    compute: Compute,
    log: ProgressLog | None = None,
) -> PartitionReport[T]:
    """Reuse cached rows, compute the rest, record failures, and replace the decade's rows in
    every table the stage writes (`stage.tables`; shots and keyframes come from one pass).
    With `log`, one progress line per computed item as it finishes (n/N, file, seconds, ETA)."""
    start = time.perf_counter()
    tables = list(stage.tables)
    scope = {"decade": decade, "stage": stage.name}
    keys = {stage_cache_key(stage, stage.content_id(item)): item for item in items}
    ledger = warehouse.read(LEDGER_TABLE, scope)
    done = {r["cache_key"] for r in ledger.to_pylist() if r["status"] == "ok"}
    hits = set(keys) & done
    todo_keys = [k for k in keys if k not in hits]
    todo = [keys[k] for k in todo_keys]

    if log is not None:
        log.info(
            f"{stage.name} {decade}: {len(items)} item(s), {len(hits)} unchanged (cached), "
            f"{len(todo)} to compute"
        )
    progress = ItemProgress(log, stage=stage.name, decade=decade, total=len(todo))

    def on_outcome(outcome: ItemOutcome) -> None:
        name = item_ref(stage, todo[outcome.index]).uri.rsplit("/", 1)[-1]
        error = outcome_error(outcome)
        progress.item_done(
            name,
            seconds=outcome.seconds,
            error=f"{error[0]}: {error[1]}" if error else None,
            detail=outcome.detail,
        )

    compute_start = time.perf_counter()
    durations = [item_ref(stage, item).duration_s for item in todo]
    outcomes = compute.map(stage, todo, on_outcome=on_outcome, durations=durations)
    compute_seconds = time.perf_counter() - compute_start
    if log is not None and todo:
        log.info(progress.summary())
    now = dt.datetime.now(dt.UTC)
    # A repeated identical failure keeps its first rows (and time): re-runs stay idempotent.
    previous = {
        (row["cache_key"], row["error_class"], row["message"]): row
        for row in warehouse.read(FAILURES_TABLE, scope).to_pylist()
    }
    previous_ledger = {row["cache_key"]: row for row in ledger.to_pylist()}
    new_rows: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    failure_rows: list[dict[str, Any]] = []
    ledger_rows = [r for r in ledger.to_pylist() if r["cache_key"] in hits]
    media_s = 0.0
    for key, item, outcome in zip(todo_keys, todo, outcomes, strict=True):
        common = common_values(stage, decade=decade, key=key, now=now)
        ref = item_ref(stage, item)
        value = outcome.value
        entry = {
            **common,
            "row_id": row_id(LEDGER_TABLE, stage.name, decade, ref.uri),
            "media_id": ref.media_id,
            "stage": stage.name,
            "uri": ref.uri,
            "media_duration_s": ref.duration_s,
        }
        error = outcome_error(outcome)
        if error is None:
            produced = stage.rows(item, value, decade=decade)
            for name, rows in produced.items():
                new_rows[name].extend({**row, **common} for row in rows)
            n_rows = sum(len(rows) for rows in produced.values())
            ledger_rows.append(
                {**entry, "status": "ok", "n_rows": n_rows, "compute_s": outcome.seconds}
            )
            media_s += ref.duration_s or 0.0
            continue
        error_class, message = error
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
        repeated = previous.get((key, error_class, message))
        failure_rows.append(repeated or failure)
        old = previous_ledger.get(key)
        ledger_rows.append(
            old
            if repeated and old and old["status"] == "failed"
            else {**entry, "status": "failed", "n_rows": 0, "compute_s": outcome.seconds}
        )

    written: dict[str, pa.Table] = {}
    writes: dict[str, WriteResult] = {}
    for name in tables:
        existing = warehouse.read(name, {"decade": decade})
        new = pa.Table.from_pylist(new_rows[name], schema=TABLES[name].schema)
        written[name] = pa.concat_tables([_rows_with_keys(existing, hits), new])
        writes[name] = warehouse.replace(name, written[name], scope={"decade": decade})
    failures = pa.Table.from_pylist(failure_rows, schema=TABLES[FAILURES_TABLE].schema)
    failures_write = warehouse.replace(FAILURES_TABLE, failures, scope=scope)
    # The ledger goes last: "ok" in the ledger implies the rows are committed.
    ledger_table = pa.Table.from_pylist(ledger_rows, schema=TABLES[LEDGER_TABLE].schema)
    warehouse.replace(LEDGER_TABLE, ledger_table, scope=scope)
    return PartitionReport(
        stage=stage.name,
        decade=decade,
        n_items=len(items),
        n_reused=len(hits),
        n_computed=len(todo),
        n_failed=len(failure_rows),
        tables=written,
        writes=writes,
        failures=failures,
        failures_write=failures_write,
        seconds=time.perf_counter() - start,
        compute_seconds=compute_seconds,
        item_seconds=sum(o.seconds for o in outcomes),
        computed_media_s=media_s,
    )
