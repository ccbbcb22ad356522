"""How every run executes, whatever launched it: one job (Dagster's asset job, the one the UI's
Materialize button, backfills, the sensors and `archive-pipeline run` all launch: see
`runner.pipeline_job`), in one process, with its console loggers."""

import dagster as dg

from archive_pipeline.defs.console import console, progress_console


@dg.definitions
def run_defaults() -> dg.Definitions:
    """Every run executes in one process, so it starts Ray and loads each model once (not once
    per step). Loggers: Dagster's
    console logger at INFO (DEBUG with ARCHIVE_VERBOSE), and the compact `progress` logger the
    command-line runner selects."""
    return dg.Definitions(
        executor=dg.in_process_executor,
        loggers={"console": console, "progress": progress_console},
    )
