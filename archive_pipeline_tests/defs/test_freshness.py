"""The nightly's freshness check: search_documents written in the night's window passes; a
skipped night (simulated with Dagster's frozen clock) turns it overdue."""

import datetime as dt

import dagster as dg
from dagster._core.test_utils import freeze_time

from archive_pipeline.definitions import defs
from archive_pipeline.defs.automation.freshness import NIGHTLY_WINDOW_H
from archive_pipeline.defs.automation.sensors import NIGHTLY_HOUR_UTC

CHECK = dg.AssetCheckKey(dg.AssetKey("search_documents"), "freshness_check")


def evaluate(instance, now: dt.datetime) -> dg.AssetCheckEvaluation:
    job = defs().resolve_implicit_global_asset_job_def()
    job = job.get_subset(asset_selection=set(), asset_check_selection={CHECK})
    with freeze_time(now):
        (evaluation,) = job.execute_in_process(instance=instance).get_asset_check_evaluations()
    return evaluation


def test_a_skipped_night_turns_search_documents_overdue():
    instance = dg.DagsterInstance.ephemeral()
    night = dt.datetime(2026, 11, 21, NIGHTLY_HOUR_UTC, tzinfo=dt.UTC)
    deadline = night + dt.timedelta(hours=NIGHTLY_WINDOW_H)
    with freeze_time(night + dt.timedelta(minutes=40)):  # the nightly backfill wrote a decade
        instance.report_runless_asset_event(
            dg.AssetMaterialization("search_documents", partition="1960s")
        )
    fresh = evaluate(instance, deadline + dt.timedelta(hours=1))
    assert fresh.passed
    # the next night did not happen: after its deadline, overdue
    overdue = evaluate(instance, deadline + dt.timedelta(days=1, hours=1))
    assert not overdue.passed and overdue.severity == dg.AssetCheckSeverity.WARN
    assert "overdue" in overdue.description.lower(), overdue.description


def test_the_freshness_sensor_is_defined_and_off_until_switched_on():
    sensor = defs().resolve_sensor_def("nightly_freshness")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
