"""What every stage asset shares: one `stage_asset(...)` call builds a stage's asset and checks.

A stage asset reads its items from the stage's declared inputs (`Stage.select`), builds its
Dagster-free stage (`stages/`) from the resources, and calls `run_stage`, which maps the stage
over the items on Ray (or inline) through `process_partition` (cache, failures as data, batched
commits); `stage_result` turns the report into the materialisation, data version included. Its
checks (`failure_rate` with the asset's own threshold, `rows_for_every_item`, `unique_rows`)
come from `defs/checks.decade_checks`. The catalogue and the shots/keyframes multi-asset use
`run_stage` and `stage_result` directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dagster as dg

from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.checks import decade_checks
from archive_pipeline.defs.health import DecadeHealth, stage_health
from archive_pipeline.defs.partitions import decade_partitions
from archive_pipeline.defs.reporting import (
    OWNERS,
    report_metadata,
    report_version,
    skipped_md,
    table_definition_metadata,
)
from archive_pipeline.defs.resources import LanceWarehouse, RayResource
from archive_pipeline.defs.runs import trigger_of
from archive_pipeline.stages.base import BaseStage, PartitionStage, Reader, Skipped
from archive_pipeline.stages.partition import PartitionReport, process_partition
from archive_pipeline.stages.writer import CommitPolicy

T = TypeVar("T")


class NotConfigured(Exception):
    """A stage with nothing to do in this deployment (e.g. no image-text model): the asset
    materialises with no rows and says why."""


@dataclass(frozen=True)
class StageRun:
    """One run of a stage asset over a decade, for its `describe` (the asset's own metadata)."""

    context: dg.AssetExecutionContext
    stage: Any
    items: list[Any]
    skipped: Skipped
    report: PartitionReport
    warehouse: Warehouse


def decade_reader(warehouse: Warehouse, decade: str) -> Reader:
    """read(table, columns=None): the decade's rows of a table (a stage's declared inputs)."""
    return lambda table, columns=None: warehouse.read(table, {"decade": decade}, columns=columns)


def stage_asset(
    stage: type[BaseStage],
    *,
    group: str,
    kinds: set[str],
    deps: Iterable[Any],
    build: Callable[[Any], Any],
    description: str,
    resources: Iterable[str] = (),
    describe: Callable[[StageRun], Mapping[str, Any]] = lambda run: {},
    select: Callable[[Reader], tuple[list, Skipped]] | None = None,
    health: Callable[..., DecadeHealth] | None = None,
) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    """The asset of a stage that writes one table (`stage.tables[0]`), and its checks.

    The asset, per decade: the stage's items from its declared inputs (`stage.select`, or
    `select`), the stage built from the resources (`build(context.resources)`, which may raise
    NotConfigured), the run on Ray (or inline) with batched commits, and the materialisation:
    counts, timings, skipped items and `describe(run)`. The checks (`failure_rate`,
    `rows_for_every_item`, `unique_rows`) expect rows for the same items (or use `health`).
    `resources`: the resource keys `build` and `describe` use besides warehouse and ray."""
    table, choose = stage.tables[0], select or stage.select

    @dg.asset(
        name=table,
        description=description,
        partitions_def=decade_partitions,
        deps=list(deps),
        code_version=stage.code_version,
        group_name=group,
        kinds=kinds,
        owners=OWNERS,
        metadata=table_definition_metadata(table),
        required_resource_keys={"warehouse", "ray", *resources},
    )
    def _asset(context) -> dg.MaterializeResult:  # (no annotation: this module defers them)
        try:
            built = build(context.resources)
        except NotConfigured as why:
            context.log.info(str(why))
            return dg.MaterializeResult(
                metadata={"status": "not configured", "reason": str(why), "rows": 0}
            )
        warehouse: LanceWarehouse = context.resources.warehouse
        wh = warehouse.get_warehouse()
        items, skipped = choose(decade_reader(wh, context.partition_key))
        report = run_stage(
            context,
            built,
            items,
            warehouse=wh,
            ray=context.resources.ray,
            policy=warehouse.commit_policy(),
            skipped=skipped,
        )
        run = StageRun(context, built, items, skipped, report, wh)
        return stage_result(report, wh, skipped=skipped_md(skipped), **describe(run))

    def expected(context, warehouse: Warehouse, decade: str) -> DecadeHealth:
        items, _ = choose(decade_reader(warehouse, decade))
        uris = [item.ref.uri for item in items]
        return stage_health(warehouse, asset=table, stage=stage.name, decade=decade, expected=uris)

    checks = decade_checks(
        table, health or expected, required_resource_keys=set(resources) if health else ()
    )
    return _asset, checks


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
