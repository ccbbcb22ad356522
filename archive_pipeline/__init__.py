"""archive_pipeline: make media archives searchable by decade (Dagster + Ray + Lance)."""

PIPELINE_VERSION = "0.1.0"
