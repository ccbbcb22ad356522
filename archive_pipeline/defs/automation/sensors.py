"""The inbox sensor: one run per decade whose media (or their metadata) changed."""

import hashlib
import json

import dagster as dg

from archive_pipeline.core.store import Inventory, scan_inventory
from archive_pipeline.defs.automation.jobs import archive_job
from archive_pipeline.resources import MediaStore

CURSOR_VERSION = 1


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
