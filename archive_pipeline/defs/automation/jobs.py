"""The job that materialises every asset of one decade partition; executor and loggers."""

import dagster as dg

from archive_pipeline.defs.console import console, progress_console

# In-process: one process per run, so Ray starts once per run and models load once per worker.
archive_job = dg.define_asset_job(
    "archive_job",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Materialise every asset of one decade, with its checks: the catalogue, then "
    "speech, vision, embeddings and search documents. Unchanged items are cache hits.",
)


@dg.definitions
def run_defaults() -> dg.Definitions:
    """Runs launched from the UI's Materialize button or a backfill also run in one process,
    so each starts Ray and loads each model once (not once per step). Loggers: Dagster's
    console logger at INFO (DEBUG with ARCHIVE_VERBOSE), and the compact `progress` logger the
    command-line runner selects."""
    return dg.Definitions(
        executor=dg.in_process_executor,
        loggers={"console": console, "progress": progress_console},
    )
