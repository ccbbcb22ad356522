"""Embedding assets: keyframe_embeddings (OpenCLIP image tower, when configured) and
segment_embeddings (speech segments and keyframe documents; MiniLM, or OpenCLIP's text tower)."""

import pyarrow.compute as pc

from archive_pipeline.core.embedders import check_clip
from archive_pipeline.defs.health import DecadeHealth, stage_health, uris
from archive_pipeline.defs.reporting import throughput
from archive_pipeline.defs.stage_assets import NotConfigured, StageRun, stage_asset
from archive_pipeline.search.documents import KEYFRAME_COLUMNS, SEGMENT_COLUMNS, keyframe_documents
from archive_pipeline.stages.embeddings import (
    KeyframeEmbeddingStage,
    SegmentEmbeddingStage,
    segment_items,
)
from archive_pipeline.stages.partition import PartitionReport

NO_CLIP = (
    "no image-text model configured (ARCHIVE_CLIP_MODEL / ARCHIVE_CLIP_PRETRAINED): no OpenCLIP "
    "weights ship offline, so nothing is written rather than meaningless vectors"
)


def vector_metadata(report: PartitionReport, n: int, unit: str) -> dict:
    """Vector length and throughput of an embedding run."""
    dims = sorted(pc.unique(report.read(columns=["dim"]).column("dim")).to_pylist())
    return {"dim": dims[0] if len(dims) == 1 else str(dims), **throughput(report, n, unit)}


def _clip(vision_models, *, required: bool):
    """The configured image-text model, checked (a clear error naming the setting before any
    worker starts); NotConfigured where `required` and none is."""
    clip = vision_models.clip()
    if clip.configured:
        check_clip(clip)
    elif required:
        raise NotConfigured(NO_CLIP)
    return clip


def _keyframe_embeddings(run: StageRun) -> dict:
    images = sum(len(item.entries) for item in run.items)
    return {
        "status": "embedded",
        "model": run.stage.model_id,
        "keyframes": images,
        **vector_metadata(run.report, images, "images"),
    }


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


keyframe_embeddings, keyframe_embeddings_checks = stage_asset(
    KeyframeEmbeddingStage,
    description="Image embeddings of the decade's keyframes (OpenCLIP image tower, when "
    "configured).",
    group="embeddings",
    kinds={"lance", "ray", "pytorch"},
    deps=["keyframes"],
    resources=["vision_models"],
    build=lambda r: KeyframeEmbeddingStage(
        _clip(r.vision_models, required=True),
        resources=r.ray.resources_of(KeyframeEmbeddingStage),
    ),
    describe=_keyframe_embeddings,
    health=_keyframe_health,
)


def _segment_items(read) -> tuple[list, list]:
    """Per media item: its diarised segments' texts and its keyframe documents' texts."""
    segments = read("diarised_segments", columns=SEGMENT_COLUMNS)
    documents = keyframe_documents(
        read("keyframes", columns=KEYFRAME_COLUMNS), read("shots"), read("frame_text"), segments
    )
    return segment_items(segments, documents), []


def _segment_embeddings(run: StageRun) -> dict:
    texts = sum(len(item.entries) for item in run.items)
    sources = run.report.read(columns=["source"]).column("source")
    return {
        "model": run.stage.model_id,
        "texts": texts,
        **{
            f"{source}_rows": pc.sum(pc.equal(sources, source)).as_py() or 0
            for source in ("speech", "keyframe")
        },
        **vector_metadata(run.report, texts, "texts"),
    }


segment_embeddings, segment_embeddings_checks = stage_asset(
    SegmentEmbeddingStage,
    description="Text embeddings of the decade's speaker segments and keyframe documents.",
    group="embeddings",
    kinds={"lance", "ray", "pytorch"},
    deps=["diarised_segments", "keyframes", "frame_text"],
    resources=["vision_models"],
    build=lambda r: SegmentEmbeddingStage(
        _clip(r.vision_models, required=False),
        resources=r.ray.resources_of(SegmentEmbeddingStage),
    ),
    describe=_segment_embeddings,
    select=_segment_items,
)
