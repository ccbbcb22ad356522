"""The nightly backfill schedule."""

import datetime as dt

import dagster as dg

from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.defs.automation.schedules import NIGHTLY_CRON, nightly_backfill


def test_nightly_backfill_requests_every_decade_once_per_night():
    night = dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC)
    requests = nightly_backfill(dg.build_schedule_context(scheduled_execution_time=night))
    assert [r.partition_key for r in requests] == list(PARTITION_KEYS)
    assert len({r.run_key for r in requests}) == len(PARTITION_KEYS)
    assert all(r.run_key.startswith("nightly:2026-11-21:") for r in requests)
    again = nightly_backfill(dg.build_schedule_context(scheduled_execution_time=night))
    assert [r.run_key for r in again] == [r.run_key for r in requests]
    assert nightly_backfill.cron_schedule == NIGHTLY_CRON
    assert nightly_backfill.job_name == "archive_job"
