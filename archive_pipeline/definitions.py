"""The Dagster code location: everything under defs/ (assets, checks, jobs, sensors, resources)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """Load every definition from the defs folder (project config: [tool.dg] in pyproject.toml)."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
