"""Run one stage over one decade: cache plan, compute (Ray or inline), rows and failures, commit.

Every stage asset goes through `process_partition`, so the incremental cache (DESIGN §5), the
failure handling (§9) and the write semantics (§4) are implemented once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import pyarrow as pa

from archive_pipeline import PIPELINE_VERSION
from archive_pipeline.core.cache import cache_key, canonical_json, plan
from archive_pipeline.core.compute import ItemOutcome, Stage, run_inline
from archive_pipeline.core.ids import row_id
from archive_pipeline.schemas import TABLES

if TYPE_CHECKING:  # the warehouse (lancedb) is driver-side only: keep it out of Ray workers
    from archive_pipeline.core.warehouse import Warehouse, WriteResult

T = TypeVar("T")
FAILURES_TABLE = "failures"


@dataclass(frozen=True)
class ItemFailure:
    """A stage's own verdict that an item cannot be processed (errors as data)."""

    error_class: str
    message: str
    media_id: str | None = None


class Compute(Protocol):
    """Something that maps a stage over items: `RayRuntime` or `InlineCompute`."""

    def map(self, stage: Stage, items: Sequence[Any]) -> list[ItemOutcome]: ...


class InlineCompute:
    """Runs stages in the calling process (debugging, and tests that are not about Ray)."""

    def map(self, stage: Stage, items: Sequence[Any]) -> list[ItemOutcome]:
        """Process items one after another in this process."""
        return run_inline(stage, items) if items else []


@dataclass(frozen=True)
class ItemRef:
    """How a stage's item is named in the failures table."""

    uri: str
    store_key: str | None
    media_id: str | None


@dataclass
class PartitionReport(Generic[T]):
    """What one stage did for one decade (rendered into Dagster metadata)."""

    stage: str
    decade: str
    n_items: int
    n_reused: int
    n_computed: int
    n_failed: int
    rows: pa.Table
    failures: pa.Table
    write: WriteResult
    failures_write: WriteResult
    seconds: float
    compute_seconds: float
    item_seconds: float

    @property
    def failure_fraction(self) -> float:
        """Failed items over all items of the decade (0 when there are none)."""
        return self.n_failed / self.n_items if self.n_items else 0.0


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


def process_partition(
    *,
    stage: Any,
    table: str,
    decade: str,
    items: Sequence[T],
    content_id: Callable[[T], str],
    ref_of: Callable[[T], ItemRef],
    rows_of: Callable[[T, Any], list[dict[str, Any]]],
    warehouse: Warehouse,
    compute: Compute,
) -> PartitionReport[T]:
    """Reuse cached rows, compute the rest, record failures, and replace the decade's rows."""
    start = time.perf_counter()
    key_of: Callable[[T], str] = lambda item: stage_cache_key(stage, content_id(item))  # noqa: E731
    existing = warehouse.read(table, {"decade": decade})
    cache = plan(existing, items, key_of)
    compute_start = time.perf_counter()
    outcomes = compute.map(stage, cache.todo)
    compute_seconds = time.perf_counter() - compute_start
    now = dt.datetime.now(dt.UTC)
    scope = {"decade": decade, "stage": stage.name}
    # A repeated identical failure keeps its first row (and time): re-runs stay idempotent.
    previous = {
        (row["cache_key"], row["error_class"], row["message"]): row
        for row in warehouse.read(FAILURES_TABLE, scope).to_pylist()
    }
    new_rows: list[dict[str, Any]] = []
    failure_rows: list[dict[str, Any]] = []
    for item, outcome in zip(cache.todo, outcomes, strict=True):
        key = key_of(item)
        common = common_values(stage, decade=decade, key=key, now=now)
        value = outcome.value
        if outcome.ok and not isinstance(value, ItemFailure):
            new_rows.extend({**row, **common} for row in rows_of(item, value))
            continue
        ref = ref_of(item)
        if isinstance(value, ItemFailure):
            error_class, message = value.error_class, value.message
            media_id = value.media_id or ref.media_id
        else:
            error_class, message, media_id = outcome.error_class, outcome.message, ref.media_id
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
        failure_rows.append(previous.get((key, error_class, message), failure))
    schema = TABLES[table].schema
    rows = pa.concat_tables([cache.reused, pa.Table.from_pylist(new_rows, schema=schema)])
    write = warehouse.replace(table, rows, scope={"decade": decade})
    failures = pa.Table.from_pylist(failure_rows, schema=TABLES[FAILURES_TABLE].schema)
    failures_write = warehouse.replace(FAILURES_TABLE, failures, scope=scope)
    return PartitionReport(
        stage=stage.name,
        decade=decade,
        n_items=len(items),
        n_reused=cache.n_reused_items,
        n_computed=len(cache.todo),
        n_failed=len(failure_rows),
        rows=warehouse.read(table, {"decade": decade}) if write.committed else rows,
        failures=failures,
        write=write,
        failures_write=failures_write,
        seconds=time.perf_counter() - start,
        compute_seconds=compute_seconds,
        item_seconds=sum(o.seconds for o in outcomes),
    )
