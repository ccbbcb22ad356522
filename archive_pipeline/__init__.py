"""archive_pipeline: make media archives searchable by decade (Dagster + Ray + Lance)."""

from archive_pipeline.core.memory import limit_malloc_arenas

PIPELINE_VERSION = "0.1.0"

limit_malloc_arenas()  # before Lance, Arrow and Ray start their threads (see core/memory.py)
