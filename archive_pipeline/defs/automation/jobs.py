"""The job that materialises every asset of one decade partition."""

import dagster as dg

# In-process: one process per run, so Ray starts once per run and models load once per worker.
archive_job = dg.define_asset_job(
    "archive_job",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Materialise every asset of one decade (catalog, then the model stages).",
)
