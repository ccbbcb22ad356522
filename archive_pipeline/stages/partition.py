"""Run one stage over one decade: plan (`stages/plan.py`), compute (Ray or inline), write
(`stages/writer.py`).

Every stage asset goes through `process_partition`, so the incremental cache (DESIGN §5), the
failure handling (§9) and the write semantics (§4) are implemented once. The `stage_items`
ledger records each item's cache key and status, so an item whose result is empty (silence,
no speech) is a cache hit too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import pyarrow as pa

from archive_pipeline.core.compute import Compute, ItemOutcome
from archive_pipeline.core.progress import ItemProgress, ProgressLog
from archive_pipeline.core.sql import sql_literal
from archive_pipeline.stages.base import PartitionStage, outcome_error, stage_cache_key
from archive_pipeline.stages.ledger import FAILURES_TABLE, done_elsewhere, read_prior
from archive_pipeline.stages.plan import PartitionPlan, plan_partition
from archive_pipeline.stages.writer import CommitPolicy, PartitionWriter

if TYPE_CHECKING:  # the warehouse (lancedb) is driver-side only: keep it out of Ray workers
    from archive_pipeline.core.guard import RemovalGuard
    from archive_pipeline.core.warehouse import Warehouse, WriteResult

T = TypeVar("T")


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
    policy: CommitPolicy | None = None,
) -> PartitionReport[T]:
    """Reuse cached items, compute the rest as a stream, and commit finished items in batches
    (`policy`, default ARCHIVE_COMMIT_EVERY's), so a killed run loses at most the batch in
    flight and the re-run resumes from the ledger. Once every item is done, rows of items no
    longer in the decade (or whose cache key changed) are deleted by key. Writes follow the
    change, never the decade's size.

    With `log`, one progress line per computed item as it finishes (n/N, file, seconds, ETA).
    The stage's (decade, stage) scope has one writer at a time: a second one waits for the
    warehouse's lease (naming `writer`, e.g. a run id), then fails naming the holder. Items the
    ledger vouches for whose rows are missing are computed again. With `removal_guard`, a run
    that would remove too much of the decade stops before removing anything."""
    start = time.perf_counter()
    what, wait = writer or f"{stage.name} {decade}", log.info if log is not None else None
    with warehouse.writer(decade, stage.name, what=what, on_wait=wait):
        plan = _plan(stage, decade, items, warehouse, log)
        out = PartitionWriter(warehouse, stage, decade, plan, policy or CommitPolicy())
        for i in plan.copies:
            copied = _copied(stage, plan, i, warehouse)
            for j in plan.sharing[plan.keys[i]]:
                out.add(j, copied, None)
        compute_start = time.perf_counter()
        item_seconds = _compute(stage, decade, plan, compute, out, log)
        out.commit()
        compute_seconds = time.perf_counter() - compute_start
        out.sweep(removal_guard)
        counted = out.counted()
    return PartitionReport(
        stage=stage.name,
        decade=decade,
        n_items=len(plan.items),
        n_reused=len(plan.items) - len(plan.todo),
        n_computed=plan.n_to_compute,
        n_copied=plan.n_copied,
        n_failed=len(out.failed),
        writes={name: counted[name] for name in out.tables},
        failures_write=counted[FAILURES_TABLE],
        seconds=time.perf_counter() - start,
        compute_seconds=compute_seconds,
        item_seconds=item_seconds,
        computed_media_s=out.media_s,
        cache_keys=tuple(sorted(f"{uri} {key}" for uri, key in plan.pairs - out.failed)),
        batches=out.batches,
        warehouse=warehouse,
    )


def _plan(
    stage: PartitionStage[T],
    decade: str,
    items: Sequence[T],
    warehouse: Warehouse,
    log: ProgressLog | None,
) -> PartitionPlan:
    """The plan of the run, from the items and what the warehouse holds, said on the log."""
    refs = [stage.ref(item) for item in items]
    keys = [stage_cache_key(stage, stage.content_id(item)) for item in items]
    first = {ref.uri: key for ref, key in reversed(list(zip(refs, keys, strict=True)))}
    prior = read_prior(warehouse, stage.name, decade, stage.tables, set(first.items()))
    plan = plan_partition(items, refs, keys, prior)
    if stage.rebuilds_from_rows:  # the same content done under another URI: rows copied
        unit_keys = [plan.keys[i] for i in plan.units]
        found = done_elsewhere(warehouse, stage.name, decade, unit_keys, exclude=plan.undone)
        plan = plan.copying(found)
    if log is not None:
        if plan.n_listed_twice:
            log.warning(
                f"{stage.name} {decade}: {plan.n_listed_twice} item(s) listed twice under one "
                "URI: each URI is processed once"
            )
        if prior.lost:
            example = sorted(prior.lost)[0][0].rsplit("/", 1)[-1]
            log.warning(
                f"{stage.name} {decade}: the rows of {len(prior.lost)} item(s) the ledger lists "
                f"as done are missing from {', '.join(stage.tables)} (e.g. {example}): "
                "computed again"
            )
        log.info(plan.summary(stage.name, decade))
    return plan


def _copied(
    stage: PartitionStage[T], plan: PartitionPlan, i: int, warehouse: Warehouse
) -> ItemOutcome:
    """Item i's result rebuilt from the rows of the item done with its content elsewhere."""
    source_decade, source_uri = plan.elsewhere[plan.keys[i]]
    source = f"uri = {sql_literal(source_uri)} AND cache_key = {sql_literal(plan.keys[i])}"
    rows = {t: warehouse.read(t, {"decade": source_decade}, filter=source) for t in stage.tables}
    return ItemOutcome(index=-1, value=stage.value_from_rows(rows, plan.items[i]))


def _compute(
    stage: PartitionStage[T],
    decade: str,
    plan: PartitionPlan,
    compute: Compute,
    out: PartitionWriter,
    log: ProgressLog | None,
) -> float:
    """Stream the plan's units through `compute` into the writer, one progress line per item;
    the items' summed compute seconds."""
    progress = ItemProgress(log, stage=stage.name, decade=decade, total=len(plan.units))
    units = [plan.items[i] for i in plan.units]
    durations = [plan.refs[i].duration_s for i in plan.units]
    item_seconds = 0.0
    for outcome in compute.stream(stage, units, durations=durations):
        unit = plan.units[outcome.index]
        error = outcome_error(outcome)
        progress.item_done(
            plan.refs[unit].uri.rsplit("/", 1)[-1],
            seconds=outcome.seconds,
            error=f"{error[0]}: {error[1]}" if error else None,
            detail=outcome.detail,
        )
        item_seconds += outcome.seconds
        for i in plan.sharing[plan.keys[unit]]:
            out.add(i, outcome, error)
    if log is not None and plan.units:
        log.info(progress.summary())
    return item_seconds
