"""Vision assets: shots (TransNetV2 or PySceneDetect). Keyframes, OCR and embeddings come next."""

import dagster as dg

from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.reporting import (
    data_version,
    failure_check,
    markdown_table,
    report_metadata,
    skipped_md,
)
from archive_pipeline.partitions import decade_partitions
from archive_pipeline.resources import LanceWarehouse, MediaStore, RayResource, VisionModels
from archive_pipeline.stages.shots import ShotsStage, shots_decade, video_items

FAILURE_CHECK = "failure_rate"


@dg.asset(
    partitions_def=decade_partitions,
    deps=[media_catalog],
    code_version=ShotsStage.code_version,
    group_name="vision",
    kinds={"lance", "ray", "pytorch"},
    check_specs=[dg.AssetCheckSpec(FAILURE_CHECK, asset="shots")],
)
def shots(
    context: dg.AssetExecutionContext,
    media_store: MediaStore,
    warehouse: LanceWarehouse,
    ray: RayResource,
    vision_models: VisionModels,
) -> dg.MaterializeResult:
    """Shot boundaries of the decade's videos, frames decoded once and streamed."""
    decade = context.partition_key
    wh = warehouse.get_warehouse()
    items, skipped = video_items(wh.read("media_catalog", {"decade": decade}))
    stage = ShotsStage(
        media_store.get_store(),
        detector=vision_models.shot_detector,
        threshold=vision_models.shot_threshold,
        device=vision_models.device,
        resources=ray.resources_for(ShotsStage.name, ShotsStage.default_resources),
    )
    report = shots_decade(
        decade=decade, items=items, stage=stage, warehouse=wh, compute=ray.compute()
    )
    rows = report.rows.to_pylist()
    return dg.MaterializeResult(
        metadata={
            **report_metadata(report),
            "videos": len(items),
            "shots": len(rows),
            "detector": stage.model_id,
            "skipped": skipped_md(skipped),
            "preview": dg.MetadataValue.md(
                markdown_table(rows, ["uri", "shot_index", "start_s", "end_s", "boundary_score"])
            ),
        },
        data_version=data_version(report.rows),
        check_results=[
            failure_check(report, check_name=FAILURE_CHECK, asset_key="shots", max_fraction=0.5)
        ],
    )
