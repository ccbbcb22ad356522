"""Per-decade checks of search_documents: a document for every item, current vectors."""

import dagster as dg

from archive_pipeline.defs.checks import STALE_VECTORS, check_spec, decade_checks, problems_md
from archive_pipeline.defs.health import derived_health, documents_without_vector
from archive_pipeline.search.indexes import TABLE

# An item is findable by its speech, its on-screen text or its keyframe images: a video with
# none of them (no speech, no text, no image model) has nothing to index, a valid state.
DOCUMENT_SOURCES = ("diarised_segments", "frame_text", "keyframe_embeddings")
# speech flagged as a likely hallucination is kept out of search (search/documents.py)
SEARCHABLE = {"diarised_segments": "suspect IS NULL"}


def _stale_vectors(warehouse, decade):
    stale = documents_without_vector(warehouse, decade)
    yield dg.AssetCheckResult(
        asset_key=TABLE,
        check_name=STALE_VECTORS,
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(stale)} documents without a current text vector (found by words "
        "only until segment_embeddings runs again)",
        metadata={"documents_without_vector": len(stale), "documents": problems_md(stale)},
    )


search_documents_checks = decade_checks(
    TABLE,
    lambda context, warehouse, decade: derived_health(
        warehouse, asset=TABLE, decade=decade, sources=DOCUMENT_SOURCES, where=SEARCHABLE
    ),
    failure_rate=False,
    extra=[check_spec(TABLE, STALE_VECTORS)],
    extra_results=_stale_vectors,
)
