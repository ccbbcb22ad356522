"""Automation: the inbox sensor (one run per changed decade), the nightly backfill, and the
sensor that marks failed the runs whose process died."""

import datetime as dt
import json

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from archive_pipeline.core.inventory import NO_MEDIA, scan_inventory
from archive_pipeline.defs.catalog.assets import INBOX_DIGEST
from archive_pipeline.defs.health import active_decades
from archive_pipeline.defs.nightly import NIGHTLY_HOUR_UTC
from archive_pipeline.defs.partitions import (
    add_request,
    decade_partitions,
    known_decades,
    new_decades,
)
from archive_pipeline.defs.resources import LanceWarehouse, MediaStore
from archive_pipeline.defs.runs import fail_abandoned_runs, trigger_tags

CURSOR_VERSION = 2


def changed_decades(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Decades whose digest differs: new, changed, moved or deleted items all show up here."""
    return sorted(
        d
        for d in set(previous) | set(current)
        if previous.get(d, NO_MEDIA) != current.get(d, NO_MEDIA)
    )


# how often the inbox is listed: a new file waits half of it on average before its run is
# requested (a listing of a large S3 inbox is one LIST per 1,000 keys)
INBOX_POLL_S = 15


def catalogued_digests(instance: dg.DagsterInstance, decades: list[str]) -> dict[str, str]:
    """The inbox digest each decade's latest media_catalog materialisation recorded, whatever
    launched it (sensor, UI, backfill, `archive-pipeline run`); decades never catalogued are
    left out."""
    digests = {}
    for decade in decades:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("media_catalog"), asset_partitions=[decade]
            ),
            limit=1,
        ).records
        value = records[0].asset_materialization.metadata.get(INBOX_DIGEST) if records else None
        if value is not None:
            digests[decade] = value.value
    return digests


@dg.sensor(
    asset_selection=dg.AssetSelection.all(),
    minimum_interval_seconds=INBOX_POLL_S,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=f"Every {INBOX_POLL_S} s: lists the inbox (folder or S3) and requests one run of "
    "every asset per decade whose files differ from what its media_catalog last catalogued (new, "
    "changed, moved or deleted; sidecars and catalogue.csv count), whoever ran it (this "
    "sensor, the UI, a backfill or `archive-pipeline run`). Decades seen for the first time "
    "become partitions.",
)
def inbox_sensor(context: dg.SensorEvaluationContext, media_store: MediaStore) -> dg.SensorResult:
    """Request one run (every asset and check) per decade whose media differ from its
    catalogue."""
    state = json.loads(context.cursor) if context.cursor else {}
    if state.get("version") != CURSOR_VERSION:
        state = {"version": CURSOR_VERSION, "generation": 0, "requested": {}}
    inventory = scan_inventory(media_store.get_store())
    current = inventory.decade_digests()
    known = known_decades(context.instance)
    catalogued = catalogued_digests(context.instance, sorted(set(known) | set(current)))
    requested = state["requested"]
    # a decade whose catalogue differs, and not already requested in this very state
    changed = [
        d
        for d in changed_decades(catalogued, current)
        if requested.get(d) != current.get(d, NO_MEDIA)
    ]
    added = new_decades(known, current)
    if not changed:
        return dg.SensorResult(
            skip_reason=f"{len(inventory.items)} media items in {len(current)} decades, all as "
            "catalogued",
            dynamic_partitions_requests=add_request(added),
        )
    generation = state["generation"] + 1
    # The key depends only on the cursor and the store state: a re-evaluated tick dedupes, and
    # a decade that changes back to an earlier state still gets a new run.
    run_requests = [
        dg.RunRequest(
            partition_key=decade,
            run_key=f"{decade}:{generation}:{current.get(decade, NO_MEDIA)}",
            tags=trigger_tags("inbox_sensor"),
        )
        for decade in changed
    ]
    context.log.info(f"decades whose inbox differs from their catalogue: {changed}")
    requested = {**requested, **{d: current.get(d, NO_MEDIA) for d in changed}}
    cursor = {"version": CURSOR_VERSION, "generation": generation, "requested": requested}
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=add_request(added),
        cursor=json.dumps(cursor, sort_keys=True),
    )


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
        tags={**trigger_tags("nightly_backfill"), "archive/night": night.date().isoformat()},
    )


def nightly_state(cursor: str | None) -> tuple[dt.datetime | None, bool]:
    """(the night the cursor is at, whether that night's backfill was launched): a cursor of
    an earlier version (a bare time) counts as launched."""
    if not cursor:
        return None, False
    if cursor.startswith("{"):
        state = json.loads(cursor)
        return dt.datetime.fromisoformat(state["night"]), bool(state["launched"])
    return dt.datetime.fromisoformat(cursor), True


def nightly_cursor(night: dt.datetime, *, launched: bool) -> str:
    """The cursor: the night handled, and whether a backfill was launched for it."""
    return json.dumps({"night": night.isoformat(), "launched": launched})


@dg.sensor(
    asset_selection=dg.AssetSelection.all(),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Nightly at 02:00 UTC: launches ONE backfill of every asset over every decade "
    "that has media (or catalogued rows to remove), listed under Overview > Backfills. Unchanged "
    "items are cache hits, so a quiet night costs a listing and a table read per decade. A "
    "sensor rather than a schedule: Dagster's schedules launch runs, only sensors can launch "
    "backfills. Switched on, it waits for the next 02:00.",
)
def nightly_backfill(
    context: dg.SensorEvaluationContext, media_store: MediaStore, warehouse: LanceWarehouse
) -> dg.SensorResult:
    """Once per night after 02:00 UTC, launch one backfill of every asset over every decade."""
    night = last_nightly_time(utc_now())
    next_at = f"{night + dt.timedelta(days=1):%Y-%m-%d %H:%M} UTC"
    handled, launched = nightly_state(context.cursor)
    if handled is None:  # switched on now: like a schedule, wait for the next 02:00
        return dg.SensorResult(
            skip_reason=f"armed; the first backfill starts at {next_at}",
            cursor=nightly_cursor(night, launched=False),
        )
    if handled >= night:
        done = (
            f"the backfill of the night of {night:%Y-%m-%d} was launched"
            if launched
            else "armed; nothing launched yet"
        )
        return dg.SensorResult(skip_reason=f"{done}; next at {next_at}")
    inventory = scan_inventory(media_store.get_store())
    decades = active_decades((item.decade for item in inventory.items), warehouse.get_warehouse())
    if not decades:
        return dg.SensorResult(
            skip_reason=f"no media and no catalogued decades tonight; next at {next_at}",
            cursor=nightly_cursor(night, launched=False),
        )
    asset_keys = context.repository_def.asset_graph.materializable_asset_keys
    context.log.info(f"nightly backfill of {len(asset_keys)} assets over {decades}")
    return dg.SensorResult(
        run_requests=[backfill_request(asset_keys, decades, night)],
        dynamic_partitions_requests=add_request(
            new_decades(known_decades(context.instance), decades)
        ),
        cursor=nightly_cursor(night, launched=True),
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
