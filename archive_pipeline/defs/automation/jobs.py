"""How every run executes, whatever launched it: one job (Dagster's asset job, the one the UI's
Materialize button, backfills, the sensors and `archive-pipeline run` all launch), in one
process, with its console loggers."""

import dagster as dg

from archive_pipeline.defs.console import console, progress_console


def pipeline_job(definitions: dg.Definitions) -> dg.JobDefinition:
    """Every asset of the pipeline with its checks (the inbox source asset is observed, not
    run): what one decade's run executes."""
    graph = definitions.resolve_asset_graph()
    assets = {key for key in graph.get_all_asset_keys() if graph.get(key).is_materializable}
    return definitions.resolve_implicit_global_asset_job_def().get_subset(asset_selection=assets)


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
