"""Runs whose process died: each run records the process executing it (host, pid, start time),
so a run killed with -9, left STARTED for ever by Dagster's default launcher, can be marked
failed by whoever looks next (`archive-pipeline run`, the `abandoned_runs` sensor)."""

from __future__ import annotations

import os
import socket

PROCESS_TAG = "archive/process"  # "<host>:<pid>:<start time>" of the process running the run


def process_tag() -> str:
    """This process, as recorded on the runs it executes."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time()!r}"


def fail_abandoned_runs(instance) -> list[str]:
    """Mark failed the runs recorded as started by a process of this host that no longer
    exists (a run killed with -9 stays STARTED for ever otherwise); their run ids."""
    import dagster as dg

    from archive_pipeline.core.reaper import alive

    failed = []
    statuses = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=statuses)):
        run = record.dagster_run
        host, _, rest = run.tags.get(PROCESS_TAG, "").partition(":")
        pid, _, started = rest.partition(":")
        if host != socket.gethostname() or not pid or alive(int(pid), float(started)):
            continue
        instance.report_run_failed(
            run,
            f"its process (pid {pid} on {host}) ended without finishing the run (killed?); "
            "marked failed. Its committed batches stay; a re-run resumes there.",
        )
        failed.append(run.run_id)
    return failed
