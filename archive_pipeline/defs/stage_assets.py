"""What every stage asset shares: its decorator arguments, its run over the decade, its result.

A stage asset reads its items from the warehouse, builds its Dagster-free stage (`stages/`),
and calls `run_stage`, which maps the stage over the items on Ray (or inline) through
`process_partition` (cache, failures as data, batched commits); `stage_result` turns the
report into the materialisation, data version included. Its checks (`failure_rate` with the
asset's own threshold, `rows_for_every_item`) come from `defs/checks.decade_checks`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import dagster as dg

from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.reporting import (
    OWNERS,
    report_metadata,
    report_version,
    table_definition_metadata,
)
from archive_pipeline.partitions import decade_partitions
from archive_pipeline.resources import RayResource
from archive_pipeline.runs import trigger_of
from archive_pipeline.stages.base import PartitionStage
from archive_pipeline.stages.partition import PartitionReport, process_partition
from archive_pipeline.stages.writer import CommitPolicy

T = TypeVar("T")


def stage_asset(stage: type, *, table: str, group: str, kinds: set[str], deps: Iterable[Any] = ()):
    """`dg.asset` of a stage that writes `table`: partitioned by decade, versioned by the
    stage's code version, with the table's column schema and owners."""
    return dg.asset(
        partitions_def=decade_partitions,
        deps=list(deps),
        code_version=stage.code_version,
        group_name=group,
        kinds=kinds,
        owners=OWNERS,
        metadata=table_definition_metadata(table),
    )


def run_stage(
    context: dg.AssetExecutionContext,
    stage: PartitionStage[T],
    items: Sequence[T],
    *,
    warehouse: Warehouse,
    ray: RayResource,
    policy: CommitPolicy,
    skipped: Sequence[tuple[str, str]] = (),
) -> PartitionReport[T]:
    """Run a stage over the decade's items (on Ray, or inline), committed in batches as
    `policy` says; items in `skipped` are logged with why."""
    for key, why in skipped:
        context.log.info(f"skipped {key}: {why}")
    return process_partition(
        decade=context.partition_key,
        items=items,
        stage=stage,
        warehouse=warehouse,
        compute=ray.compute(),
        log=context.log,
        writer=writer_name(context),
        policy=policy,
    )


def writer_name(context: dg.AssetExecutionContext) -> str:
    """How a run names itself as a writer (the holder a second writer is told of)."""
    trigger = trigger_of(context.run.tags)
    return f"run {context.run.run_id[:8]} ({trigger}) of {context.op_def.name}"


@contextlib.contextmanager
def decade_writer(context: dg.AssetExecutionContext, warehouse: Warehouse) -> Iterator[None]:
    """Be the only writer of this asset's decade while the block runs (see Warehouse.writer)."""
    table = context.asset_key.to_user_string()
    with warehouse.writer(
        context.partition_key, table, what=writer_name(context), on_wait=context.log.info
    ):
        yield


def stage_result(
    report: PartitionReport,
    warehouse: Warehouse,
    *,
    table: str | None = None,
    asset_key: str | None = None,
    **metadata: Any,
) -> dg.MaterializeResult:
    """The materialisation of a stage's table: the report's counts, timings and table
    metadata, then the asset's own `metadata`; the data version from the report."""
    return dg.MaterializeResult(
        asset_key=asset_key,
        metadata={**report_metadata(report, warehouse, table=table), **metadata},
        data_version=report_version(report),
    )
