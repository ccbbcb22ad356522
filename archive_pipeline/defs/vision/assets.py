"""Vision assets: shots and keyframes (one decode pass per video) and frame_text (OCR)."""

import base64
import io

import dagster as dg
import pyarrow.compute as pc

from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.partitions import decade_partitions
from archive_pipeline.defs.reporting import (
    OWNERS,
    markdown_table,
    preview,
    skipped_md,
    table_definition_metadata,
    throughput,
)
from archive_pipeline.defs.resources import LanceWarehouse, MediaStore, RayResource, VisionModels
from archive_pipeline.defs.stage_assets import StageRun, run_stage, stage_asset, stage_result
from archive_pipeline.stages.ocr import FrameTextStage
from archive_pipeline.stages.shots import ShotsStage, video_items


def thumbnails_md(
    rows: list[dict], *, limit: int = 6, width: int = 160, total: int | None = None
) -> str:
    """A markdown strip of a few keyframe thumbnails (inline data URIs, re-encoded at `width`
    px to keep the event log light) with their times."""
    from PIL import Image

    cells = []
    for row in rows[:limit]:
        image = Image.open(io.BytesIO(row["thumbnail"])).convert("RGB")
        image.thumbnail((width, width))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=70)
        data = base64.b64encode(out.getvalue()).decode()
        name = row["uri"].rsplit("/", 1)[-1]
        cells.append(f"![{name} {row['time_s']:.1f}s](data:image/jpeg;base64,{data})")
    lines = [" ".join(cells) or "_no keyframes_"]
    lines += [
        "",
        markdown_table(rows, ["file", "shot_index", "time_s", "phash"], limit=limit, total=total),
    ]
    return "\n".join(lines)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "shots",
            deps=[media_catalog],
            code_version=ShotsStage.code_version,
            group_name="vision",
            kinds={"lance", "ray", "pytorch"},
            description="Shot boundaries of the decade's videos (TransNetV2 or PySceneDetect).",
            partitions_def=decade_partitions,
            owners=OWNERS,
            metadata=table_definition_metadata("shots"),
        ),
        dg.AssetSpec(
            "keyframes",
            deps=["shots"],
            code_version=ShotsStage.code_version,
            group_name="vision",
            kinds={"lance", "ray"},
            description="Keyframes per shot (and per still's page) with thumbnails, "
            "near-duplicates removed by pHash.",
            partitions_def=decade_partitions,
            owners=OWNERS,
            metadata=table_definition_metadata("keyframes"),
        ),
    ],
)
def shots_and_keyframes(
    context: dg.AssetExecutionContext,
    media_store: MediaStore,
    warehouse: LanceWarehouse,
    ray: RayResource,
    vision_models: VisionModels,
):
    """Shots and keyframes of the decade's videos from one decode pass per video."""
    wh = warehouse.get_warehouse()
    items, skipped = video_items(wh.read("media_catalog", {"decade": context.partition_key}))
    stage = ShotsStage(
        media_store.get_store(),
        **vision_models.shots(),
        keyframes=vision_models.keyframes(),
        resources=ray.resources_of(ShotsStage),
    )
    report = run_stage(
        context, stage, items, warehouse=wh, ray=ray, policy=warehouse.commit_policy()
    )
    n_shots = report.writes["shots"].rows
    stats = report.read("keyframes", columns=["replaces", "thumbnail"])
    first = report.read(
        "keyframes", columns=["uri", "shot_index", "time_s", "phash", "thumbnail"], limit=6
    )
    stills = sum(1 for i in items if i.kind == "image")
    common = {"videos": len(items) - stills, "stills": stills, "skipped": skipped_md(skipped)}
    yield stage_result(
        report,
        wh,
        table="shots",
        asset_key="shots",
        **common,
        shots=n_shots,
        detector=stage.model_id,
        preview=dg.MetadataValue.md(
            preview(
                report, ["file", "shot_index", "start_s", "end_s", "boundary_score"], table="shots"
            )
        ),
    )
    yield stage_result(
        report,
        wh,
        table="keyframes",
        asset_key="keyframes",
        **common,
        shots=n_shots,
        keyframes=stats.num_rows,
        duplicates_removed=pc.sum(pc.list_value_length(stats.column("replaces"))).as_py() or 0,
        thumbnail_bytes=pc.sum(pc.binary_length(stats.column("thumbnail"))).as_py() or 0,
        preview=dg.MetadataValue.md(thumbnails_md(first.to_pylist(), total=stats.num_rows)),
    )


def _frame_text(run: StageRun) -> dict:
    items, report = run.items, run.report
    keyframes = sum(len(item.keyframes) for item in items)
    read = report.read(columns=["keyframe_id", "script"])
    fraktur = read.filter(pc.equal(read.column("script"), "Fraktur")).column("keyframe_id")
    return {
        "videos": sum(1 for i in items if i.video.kind != "image"),
        "stills": sum(1 for i in items if i.video.kind == "image"),
        "keyframes_read": keyframes,
        "keyframes_with_text": pc.count_distinct(read.column("keyframe_id")).as_py(),
        "historic_print_pages": pc.count_distinct(fraktur).as_py(),
        "ocr_lines": report.write.rows,
        "engine": run.stage.model_id,
        "language": run.stage.settings.language,
        **throughput(report, keyframes, "keyframes"),
        "preview": dg.MetadataValue.md(
            preview(report, ["file", "text", "time_s", "line_index", "confidence"])
        ),
    }


frame_text, frame_text_checks = stage_asset(
    FrameTextStage,
    description="On-screen text of the decade's keyframes (OCR: lines, boxes, confidences).",
    group="vision",
    kinds={"lance", "ray", "onnx"},
    deps=["keyframes"],
    resources=["media_store", "vision_models"],
    build=lambda r: FrameTextStage(
        r.media_store.get_store(),
        settings=r.vision_models.ocr(),
        resources=r.ray.resources_of(FrameTextStage),
    ),
    describe=_frame_text,
)
