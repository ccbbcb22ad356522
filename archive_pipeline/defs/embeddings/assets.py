"""Embedding assets: keyframe_embeddings (OpenCLIP image tower, when configured) and
segment_embeddings (speech segments and keyframe documents; MiniLM, or OpenCLIP's text tower)."""

import dagster as dg
import pyarrow.compute as pc

from archive_pipeline.defs.reporting import preview, throughput
from archive_pipeline.defs.stage_assets import run_stage, stage_asset, stage_result
from archive_pipeline.resources import LanceWarehouse, RayResource, VisionModels
from archive_pipeline.search.documents import KEYFRAME_COLUMNS, SEGMENT_COLUMNS, keyframe_documents
from archive_pipeline.stages.embedders import check_clip
from archive_pipeline.stages.embeddings import (
    KeyframeEmbeddingStage,
    SegmentEmbeddingStage,
    keyframe_items,
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


@stage_asset(
    KeyframeEmbeddingStage,
    table="keyframe_embeddings",
    group="embeddings",
    kinds={"lance", "ray", "pytorch"},
    deps=["keyframes"],
)
def keyframe_embeddings(
    context: dg.AssetExecutionContext,
    warehouse: LanceWarehouse,
    ray: RayResource,
    vision_models: VisionModels,
) -> dg.MaterializeResult:
    """Image embeddings of the decade's keyframes (OpenCLIP image tower, when configured)."""
    decade = context.partition_key
    clip = vision_models.clip()
    if not clip.configured:
        context.log.info(NO_CLIP)
        return dg.MaterializeResult(
            metadata={"status": "not configured", "reason": NO_CLIP, "rows": 0}
        )
    check_clip(clip)  # a clear error naming the setting before any worker starts
    wh = warehouse.get_warehouse()
    items = keyframe_items(wh.read("keyframes", {"decade": decade}))
    stage = KeyframeEmbeddingStage(clip, resources=ray.resources_of(KeyframeEmbeddingStage))
    report = run_stage(
        context, stage, items, warehouse=wh, ray=ray, policy=warehouse.commit_policy()
    )
    images = sum(len(item.entries) for item in items)
    return stage_result(
        report,
        wh,
        status="embedded",
        model=stage.model_id,
        keyframes=images,
        **vector_metadata(report, images, "images"),
    )


@stage_asset(
    SegmentEmbeddingStage,
    table="segment_embeddings",
    group="embeddings",
    kinds={"lance", "ray", "pytorch"},
    deps=["diarised_segments", "keyframes", "frame_text"],
)
def segment_embeddings(
    context: dg.AssetExecutionContext,
    warehouse: LanceWarehouse,
    ray: RayResource,
    vision_models: VisionModels,
) -> dg.MaterializeResult:
    """Text embeddings of the decade's speaker segments and keyframe documents."""
    decade = context.partition_key
    clip = vision_models.clip()
    if clip.configured:
        check_clip(clip)
    wh = warehouse.get_warehouse()
    scope = {"decade": decade}
    segments = wh.read("diarised_segments", scope, columns=SEGMENT_COLUMNS)
    keyframes = wh.read("keyframes", scope, columns=KEYFRAME_COLUMNS)
    documents = keyframe_documents(
        keyframes, wh.read("shots", scope), wh.read("frame_text", scope), segments
    )
    items = segment_items(segments, documents)
    stage = SegmentEmbeddingStage(clip, resources=ray.resources_of(SegmentEmbeddingStage))
    report = run_stage(
        context, stage, items, warehouse=wh, ray=ray, policy=warehouse.commit_policy()
    )
    texts = sum(len(item.entries) for item in items)
    sources = report.read(columns=["source"]).column("source")
    return stage_result(
        report,
        wh,
        model=stage.model_id,
        texts=texts,
        **{
            f"{source}_rows": pc.sum(pc.equal(sources, source)).as_py() or 0
            for source in ("speech", "keyframe")
        },
        **vector_metadata(report, texts, "texts"),
        preview=dg.MetadataValue.md(
            preview(report, ["file", "text", "source", "start_s", "speaker"])
        ),
    )
