"""Automation: the inbox sensor (one run per changed decade), the nightly backfill, and the
sensor that marks failed the runs whose process died."""

import datetime as dt
import hashlib
import json

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from archive_pipeline.core.store import Inventory, scan_inventory
from archive_pipeline.defs.automation.jobs import archive_job
from archive_pipeline.health import active_decades
from archive_pipeline.partitions import decade_partitions
from archive_pipeline.resources import LanceWarehouse, MediaStore
from archive_pipeline.runs import fail_abandoned_runs

CURSOR_VERSION = 1
NIGHTLY_HOUR_UTC = 2


def decade_digests(inventory: Inventory) -> dict[str, str]:
    """Digest per decade over its items' keys, sizes, times, etags, decade rules and metadata."""
    by_decade: dict[str, list[str]] = {}
    for item in inventory.items:
        by_decade.setdefault(item.decade, []).append(item.state_digest)
    return {
        decade: hashlib.sha256("\n".join(sorted(states)).encode()).hexdigest()[:24]
        for decade, states in sorted(by_decade.items())
    }


def changed_decades(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Decades whose digest differs: new, changed, moved or deleted items all show up here."""
    return sorted(d for d in set(previous) | set(current) if previous.get(d) != current.get(d))


@dg.sensor(
    job=archive_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Every minute: lists the inbox (folder or S3) and requests one archive_job run "
    "per decade whose files changed (new, changed, moved or deleted; sidecars and "
    "catalogue.csv count). Unchanged decades are not run.",
)
def inbox_sensor(context: dg.SensorEvaluationContext, media_store: MediaStore) -> dg.SensorResult:
    """Request one archive_job run per decade whose media changed since the last tick."""
    state = json.loads(context.cursor) if context.cursor else {}
    if state.get("version") != CURSOR_VERSION:
        state = {"version": CURSOR_VERSION, "generation": 0, "decades": {}}
    inventory = scan_inventory(media_store.get_store())
    current = decade_digests(inventory)
    changed = changed_decades(state["decades"], current)
    if not changed:
        return dg.SensorResult(skip_reason=f"no change in {len(inventory.items)} media items")
    generation = state["generation"] + 1
    # The key depends only on the cursor and the store state: a re-evaluated tick dedupes, and
    # a decade that changes back to an earlier state still gets a new run.
    run_requests = [
        dg.RunRequest(
            partition_key=decade,
            run_key=f"{decade}:{generation}:{current.get(decade, 'empty')}",
            tags={"archive/trigger": "inbox_sensor"},
        )
        for decade in changed
    ]
    context.log.info(f"changed decades: {changed}")
    cursor = {"version": CURSOR_VERSION, "generation": generation, "decades": current}
    return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(cursor, sort_keys=True))


def utc_now() -> dt.datetime:
    """The current time, UTC (a function, so that tests can move the clock)."""
    return dt.datetime.now(dt.UTC)


def last_nightly_time(now: dt.datetime) -> dt.datetime:
    """The latest 02:00 UTC at or before `now`."""
    night = now.astimezone(dt.UTC).replace(hour=NIGHTLY_HOUR_UTC, minute=0, second=0, microsecond=0)
    return night if night <= now else night - dt.timedelta(days=1)


def backfill_request(asset_keys, decades: list[str], night: dt.datetime) -> dg.RunRequest:
    """One asset backfill of every asset over these decades (the daemon launches its runs)."""
    subset = decade_partitions.subset_with_partition_keys(decades)
    return dg.RunRequest.for_asset_graph_subset(
        AssetGraphSubset(partitions_subsets_by_asset_key=dict.fromkeys(asset_keys, subset)),
        tags={"archive/trigger": "nightly_backfill", "archive/night": night.date().isoformat()},
    )


@dg.sensor(
    asset_selection=dg.AssetSelection.all(),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Nightly at 02:00 UTC: launches ONE backfill of every asset over every decade "
    "that has media (or catalogued rows to remove), listed under Overview > Backfills. Unchanged "
    "items are cache hits, so a quiet night costs a listing and a table read per decade. A "
    "sensor rather than a schedule: Dagster's schedules launch runs, only sensors can launch "
    "backfills.",
)
def nightly_backfill(
    context: dg.SensorEvaluationContext, media_store: MediaStore, warehouse: LanceWarehouse
) -> dg.SensorResult:
    """Once per night after 02:00 UTC, launch one backfill of every asset over every decade."""
    night = last_nightly_time(utc_now())
    next_night = night + dt.timedelta(days=1)
    if not context.cursor:  # switched on now: like a schedule, wait for the next 02:00
        return dg.SensorResult(
            skip_reason=f"armed: the first backfill starts at {next_night:%Y-%m-%d %H:%M} UTC",
            cursor=night.isoformat(),
        )
    if dt.datetime.fromisoformat(context.cursor) >= night:
        return dg.SensorResult(
            skip_reason=f"tonight's backfill is launched; next at {next_night:%Y-%m-%d %H:%M} UTC"
        )
    inventory = scan_inventory(media_store.get_store())
    decades = active_decades((item.decade for item in inventory.items), warehouse.get_warehouse())
    if not decades:
        return dg.SensorResult(
            skip_reason="no media and no catalogued decades", cursor=night.isoformat()
        )
    asset_keys = context.repository_def.asset_graph.get_all_asset_keys()
    context.log.info(f"nightly backfill of {len(asset_keys)} assets over {decades}")
    return dg.SensorResult(
        run_requests=[backfill_request(asset_keys, decades, night)], cursor=night.isoformat()
    )


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: marks failed the runs whose process on this host ended without "
    "finishing them (a run worker killed with -9 stays STARTED for ever with Dagster's default "
    "launcher). Their committed batches stay; a re-run resumes there.",
)
def abandoned_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Mark failed the runs whose process died without finishing them."""
    failed = fail_abandoned_runs(context.instance)
    for run_id in failed:
        context.log.info(f"run {run_id} was left STARTED by a process that is gone: marked failed")
    return dg.SkipReason(
        f"marked failed: {', '.join(failed)}" if failed else "no run left by a dead process"
    )
