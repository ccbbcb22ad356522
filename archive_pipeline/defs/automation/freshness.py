"""The nightly's freshness: a Dagster freshness check on search_documents (the table the search
service and downstream teams read) that turns overdue when no decade of it was written between
the night's 02:00 UTC and its deadline, and the sensor that evaluates it."""

import datetime as dt

import dagster as dg

from archive_pipeline.defs.automation.sensors import NIGHTLY_HOUR_UTC

NIGHTLY_WINDOW_H = 4  # the nightly backfill has until 06:00 UTC to write search_documents

nightly_freshness = dg.build_last_update_freshness_checks(
    assets=[dg.AssetKey("search_documents")],
    deadline_cron=f"0 {NIGHTLY_HOUR_UTC + NIGHTLY_WINDOW_H} * * *",
    lower_bound_delta=dt.timedelta(hours=NIGHTLY_WINDOW_H),
    severity=dg.AssetCheckSeverity.WARN,
)

nightly_freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=nightly_freshness,
    name="nightly_freshness",
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
