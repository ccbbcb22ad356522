"""Per-decade checks of the embedding assets: failures, and vectors for every item."""

from archive_pipeline.defs.checks import decade_checks
from archive_pipeline.health import DecadeHealth, stage_health, uris
from archive_pipeline.search.documents import KEYFRAME_COLUMNS, keyframe_documents
from archive_pipeline.stages.embeddings import (
    KeyframeEmbeddingStage,
    SegmentEmbeddingStage,
    segment_items,
)


def _keyframe_health(context, warehouse, decade):
    if not context.resources.vision_models.clip().configured:
        # nothing is embedded without an image-text model (and reading would create the table)
        return DecadeHealth(asset="keyframe_embeddings", decade=decade, expected=0)
    return stage_health(  # one item per video with keyframes (their URI column, no thumbnails)
        warehouse,
        asset="keyframe_embeddings",
        stage=KeyframeEmbeddingStage.name,
        decade=decade,
        expected=uris(warehouse, "keyframes", decade),
    )


def _segment_health(context, warehouse, decade):
    scope = {"decade": decade}
    segments = warehouse.read("diarised_segments", scope)
    documents = keyframe_documents(
        warehouse.read("keyframes", scope, columns=KEYFRAME_COLUMNS),
        warehouse.read("shots", scope),
        warehouse.read("frame_text", scope),
        segments,
    )
    return stage_health(
        warehouse,
        asset="segment_embeddings",
        stage=SegmentEmbeddingStage.name,
        decade=decade,
        expected=[item.uri for item in segment_items(segments, documents)],
    )


keyframe_embeddings_checks = decade_checks(
    "keyframe_embeddings", _keyframe_health, required_resource_keys={"vision_models"}
)
segment_embeddings_checks = decade_checks("segment_embeddings", _segment_health)
