"""The nightly backfill: every decade, every night (cheap: unchanged items are cache hits)."""

import dagster as dg

from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.defs.automation.jobs import archive_job

NIGHTLY_CRON = "0 2 * * *"


@dg.schedule(
    job=archive_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def nightly_backfill(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Request an archive_job run for every decade partition, once per night."""
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [
        dg.RunRequest(
            partition_key=decade,
            run_key=f"nightly:{night}:{decade}",
            tags={"archive/trigger": "nightly_backfill"},
        )
        for decade in PARTITION_KEYS
    ]
