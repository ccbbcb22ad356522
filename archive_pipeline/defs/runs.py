"""Run tags: what launched a run (`archive/trigger`, on every run whatever launched it) and
the process executing it (`archive/worker`: host, pid, start time), so a run killed with -9,
left STARTED for ever by Dagster's default launcher, can be marked failed by whoever looks next
(`archive-pipeline run`, the `abandoned_runs` sensor)."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from collections.abc import Mapping

TRIGGER_TAG = "archive/trigger"  # inbox_sensor, nightly_backfill, Dagster UI, archive-pipeline run
PROCESS_TAG = "archive/worker"  # "<host> pid <pid> started <ISO time>" of the run's process
# on a run of `archive-pipeline run` that finished clean: a digest of its decade's listing, the
# code and the settings; the next `archive-pipeline run` skips the decade while it is the same
INPUTS_TAG = "archive/inputs"


def trigger_tags(trigger: str) -> dict[str, str]:
    """The tags a launcher puts on its runs."""
    return {TRIGGER_TAG: trigger}


def trigger_of(tags: Mapping[str, str]) -> str:
    """What launched a run, from its tags: its own trigger tag, else Dagster's (a backfill, a
    sensor, a schedule, the UI's buttons)."""
    if tags.get(TRIGGER_TAG):
        return tags[TRIGGER_TAG]
    if tags.get("dagster/backfill"):
        return "backfill"
    for key in ("dagster/sensor_name", "dagster/schedule_name"):
        if tags.get(key):
            return tags[key]
    if tags.get("dagster/from_ui") == "true":
        return "Dagster UI"
    return "Dagster"


def process_tag(
    pid: int | None = None, started: float | None = None, host: str | None = None
) -> str:
    """A process (this one by default) as recorded on the runs it executes."""
    import psutil

    started = psutil.Process().create_time() if started is None else started
    when = dt.datetime.fromtimestamp(started, dt.UTC).isoformat()
    return f"{host or socket.gethostname()} pid {pid or os.getpid()} started {when}"


def parse_process_tag(value: str) -> tuple[str, int, float] | None:
    """(host, pid, start time) of a process tag; None for anything else."""
    match = re.fullmatch(r"(\S+) pid (\d+) started (\S+)", value or "")
    if match is None:
        return None
    try:
        started = dt.datetime.fromisoformat(match.group(3)).timestamp()
    except ValueError:
        return None
    return match.group(1), int(match.group(2)), started


def fail_abandoned_runs(instance) -> list[str]:
    """Mark failed the runs recorded as started by a process of this host that no longer
    exists (a run killed with -9 stays STARTED for ever otherwise); their run ids."""
    import dagster as dg

    from archive_pipeline.core.reaper import alive

    failed = []
    statuses = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=statuses)):
        run = record.dagster_run
        recorded = parse_process_tag(run.tags.get(PROCESS_TAG, ""))
        if recorded is None:
            continue
        host, pid, started = recorded
        if host != socket.gethostname() or alive(pid, started):
            continue
        instance.report_run_failed(
            run,
            f"its process (pid {pid} on {host}) ended without finishing the run (killed?); "
            "marked failed. Its committed batches stay; a re-run resumes there.",
        )
        failed.append(run.run_id)
    return failed


def root_error(error) -> tuple[str, str] | None:
    """(class, message) of the error that started a SerializableErrorInfo chain: the user's
    exception, not Dagster's wrapper ("Error occurred while executing ...")."""
    if error is None:
        return None
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = (error.message or "").strip()
    # Dagster's message starts with the class name, sometimes with its module
    message = re.sub(rf"^([\w.]+\.)?{re.escape(error.cls_name or '')}: ", "", message)
    return error.cls_name or "Error", message


def failure_reason(event) -> str | None:
    """Why a failure event failed, in one line (error class and message), or None."""
    data = getattr(event, "event_specific_data", None)
    error = getattr(data, "error", None)
    found = root_error(error)
    if found is None:
        return None
    cls_name, message = found
    first = message.splitlines()[0] if message else ""
    return f"{cls_name}: {first}" if first else cls_name


def run_failures(result) -> list[str]:
    """'step: reason' of each failed step of an in-process run result (the run's own failure
    when no step failed, e.g. a resource that could not start)."""
    lines = []
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RESOURCE_INIT_FAILURE"):
            reason = failure_reason(event)
            if reason:
                lines.append(f"{event.step_key or 'resources'}: {reason}")
    if not lines:
        for event in result.all_events:
            if event.event_type_value == "PIPELINE_FAILURE":
                reason = failure_reason(event) or getattr(
                    event.event_specific_data, "failure_reason", None
                )
                if reason:
                    lines.append(f"run: {reason}")
    return list(dict.fromkeys(lines))
