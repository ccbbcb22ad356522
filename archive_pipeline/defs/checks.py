"""Per-decade asset checks shared by every area: failed items and items without rows.

Each asset gets one check step (a `multi_asset_check`, partitioned by decade like its asset)
that reads the committed tables back through `defs/health.py`. The step is subsettable:
a run of checks alone (`archive-pipeline check`, or a launch tagged with the decade) checks a
decade without materialising the asset again. Dagster 1.13's UI cannot yet launch the checks
of a partitioned asset alone for one partition (its Execute button is disabled; "Execute all"
launches without a decade, which fails saying how to check a decade).
"""

import warnings
from collections.abc import Callable, Iterable, Iterator

import dagster as dg

from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.health import DecadeHealth, Problem, duplicated_row_ids, stage_health
from archive_pipeline.defs.partitions import decade_partitions
from archive_pipeline.defs.reporting import markdown_table
from archive_pipeline.defs.resources import CheckSettings, LanceWarehouse

NO_DECADE = (
    "these checks run per decade, and this run names none (the UI's 'Execute all' launches "
    "without one): run `archive-pipeline check --decade D [--asset A] [--check NAME]`, or "
    "Materialize the decade (its checks run after the asset)"
)
FAILURE_RATE = "failure_rate"
ROWS_FOR_EVERY_ITEM = "rows_for_every_item"
STALE_VECTORS = "current_vectors"
UNIQUE_ROWS = "unique_rows"

CHECK_DESCRIPTIONS = {
    FAILURE_RATE: "Warns when any of the decade's items failed; fails (ERROR) when at least "
    "the configured fraction failed (ARCHIVE_MAX_FAILURE_FRACTIONS for this asset, else "
    "ARCHIVE_MAX_FAILURE_FRACTION, default half).",
    ROWS_FOR_EVERY_ITEM: "Fails when an item of the decade has no rows, no recorded failure and "
    "no 'done, nothing found' in the ledger (not processed yet, or rows lost).",
    UNIQUE_ROWS: "Fails when two rows of the decade carry one row_id (two writers committed "
    "the same rows): `archive-pipeline repair --table <asset>` keeps one of each.",
    STALE_VECTORS: "Warns when search documents have no current text vector (text or model "
    "changed since segment_embeddings ran): they are found by words only.",
}


def problems_md(problems: list[Problem]) -> dg.MetadataValue:
    """The listed items as a markdown table (file name first)."""
    rows = [
        {"file": p.uri.rsplit("/", 1)[-1], "error": p.error_class, "message": p.message}
        for p in problems
    ]
    return dg.MetadataValue.md(markdown_table(rows, ["file", "error", "message"], limit=50))


def failure_rate_result(health: DecadeHealth, *, max_fraction: float) -> dg.AssetCheckResult:
    """Passed when nothing failed; WARN when some items failed; ERROR when at least
    `max_fraction` of them failed."""
    fraction = health.failure_fraction
    severity = (
        dg.AssetCheckSeverity.ERROR if fraction >= max_fraction else dg.AssetCheckSeverity.WARN
    )
    return dg.AssetCheckResult(
        asset_key=health.asset,
        check_name=FAILURE_RATE,
        passed=not health.failed,
        severity=severity,
        description=f"{len(health.failed)} of {health.expected} items failed ({fraction:.0%}; "
        f"error from {max_fraction:.0%})",
        metadata={
            "items": health.expected,
            "failures": len(health.failed),
            "failure_fraction": round(fraction, 4),
            "threshold": max_fraction,
            "failed_items": problems_md(health.failed),
        },
    )


def coverage_result(health: DecadeHealth) -> dg.AssetCheckResult:
    """Passed when every expected item has rows, a failure record or an empty result."""
    return dg.AssetCheckResult(
        asset_key=health.asset,
        check_name=ROWS_FOR_EVERY_ITEM,
        passed=not health.missing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(health.missing)} of {health.expected} items have no rows and no "
        "recorded failure",
        metadata={
            "items": health.expected,
            "items_without_rows": len(health.missing),
            "missing_items": problems_md(health.missing),
        },
    )


def unique_rows_result(warehouse: Warehouse, asset: str, decade: str) -> dg.AssetCheckResult:
    """Passed when every row_id of the asset's decade is carried by one row."""
    duplicated = duplicated_row_ids(warehouse, asset, decade)
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=UNIQUE_ROWS,
        passed=not duplicated,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(duplicated)} row_ids carried by more than one row"
        + (f": run `archive-pipeline repair --table {asset}`" if duplicated else ""),
        metadata={"duplicated_row_ids": len(duplicated), "examples": ", ".join(duplicated[:5])},
    )


def catalog_items_health(
    asset: str, stage: str, items_of: Callable[..., tuple[list, list]]
) -> Callable[..., DecadeHealth]:
    """Health of a stage whose items come from the decade's catalogue (`items_of(catalog)`:
    speech_items, video_items), for `decade_checks`."""

    def health(context, warehouse: Warehouse, decade: str) -> DecadeHealth:
        items, _ = items_of(warehouse.read("media_catalog", {"decade": decade}))
        return stage_health(
            warehouse, asset=asset, stage=stage, decade=decade, expected=[i.uri for i in items]
        )

    return health


def decade_checks(
    asset: str,
    health: Callable[..., DecadeHealth],
    *,
    failure_rate: bool = True,
    extra: Iterable[dg.AssetCheckSpec] = (),
    extra_results: Callable[[Warehouse, str], Iterable[dg.AssetCheckResult]] | None = None,
    required_resource_keys: Iterable[str] = (),
) -> dg.AssetChecksDefinition:
    """The per-decade checks of one asset: `failure_rate` (stage assets), `rows_for_every_item`,
    `unique_rows`, and any `extra` specs whose results `extra_results(warehouse, decade)` yields.

    `health(context, warehouse, decade)` computes the asset's DecadeHealth.
    """
    names = ([FAILURE_RATE] if failure_rate else []) + [ROWS_FOR_EVERY_ITEM, UNIQUE_ROWS]
    specs = [check_spec(asset, name) for name in names] + list(extra)

    @dg.multi_asset_check(
        specs=specs,
        name=f"{asset}_checks",
        can_subset=True,
        required_resource_keys={"check_settings", "warehouse", *required_resource_keys},
    )
    def _checks(context: dg.AssetCheckExecutionContext):
        warehouse: LanceWarehouse = context.resources.warehouse
        settings: CheckSettings = context.resources.check_settings
        wanted = {key.name for key in context.selected_asset_check_keys}
        wh = warehouse.get_warehouse()

        def evaluate(decade: str) -> Iterator[dg.AssetCheckResult]:
            if wanted & {FAILURE_RATE, ROWS_FOR_EVERY_ITEM}:
                result = health(context, wh, decade)
                if failure_rate and FAILURE_RATE in wanted:
                    threshold = settings.failure_threshold(asset)
                    yield failure_rate_result(result, max_fraction=threshold)
                if ROWS_FOR_EVERY_ITEM in wanted:
                    yield coverage_result(result)
            if UNIQUE_ROWS in wanted:
                yield unique_rows_result(wh, asset, decade)
            if extra_results is not None:
                yield from (r for r in extra_results(wh, decade) if r.check_name in wanted)

        if not context.has_partition_key:  # the UI's "Execute all" on a check page
            raise dg.Failure(NO_DECADE)
        yield from evaluate(context.partition_key)

    return _checks


def check_spec(asset: str, name: str) -> dg.AssetCheckSpec:
    """A per-decade check spec of `asset`, described in CHECK_DESCRIPTIONS."""
    with warnings.catch_warnings():
        # partitioned checks are a Dagster preview; warned once per spec at every load
        warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec")
        return dg.AssetCheckSpec(
            name,
            asset=asset,
            description=CHECK_DESCRIPTIONS[name],
            partitions_def=decade_partitions,
        )
