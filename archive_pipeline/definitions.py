"""The Dagster code location: everything under defs/ (assets, checks, jobs, sensors, resources)."""

import dagster as dg

import archive_pipeline.defs


@dg.definitions
def defs() -> dg.Definitions:
    """Load every definition from the defs package (works from a wheel, no pyproject needed)."""
    return dg.load_defs(defs_root=archive_pipeline.defs)
