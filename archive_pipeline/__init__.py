"""archive_pipeline: make media archives searchable by decade (Dagster + Ray + Lance)."""

from archive_pipeline.core.process import configure_process

PIPELINE_VERSION = "0.1.0"

configure_process()  # before Lance, Arrow, Ray and onnxruntime start (see core/process.py)
