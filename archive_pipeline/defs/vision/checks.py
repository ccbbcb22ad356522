"""Per-decade checks of the vision assets: failures, and rows for every video."""

from archive_pipeline.defs.checks import catalog_items_health, decade_checks
from archive_pipeline.health import stage_health
from archive_pipeline.stages.ocr import FrameTextStage, ocr_items
from archive_pipeline.stages.shots import ShotsStage, video_items


def _frame_text_health(context, warehouse, decade):
    keyframes = warehouse.read(
        "keyframes",
        {"decade": decade},
        columns=["row_id", "media_id", "keyframe_index", "shot_index", "time_s", "cache_key"],
    )
    videos, _ = video_items(warehouse.read("media_catalog", {"decade": decade}))
    items = ocr_items(videos, keyframes)
    return stage_health(
        warehouse,
        asset="frame_text",
        stage=FrameTextStage.name,
        decade=decade,
        expected=[item.ref.uri for item in items],
    )


shots_checks = decade_checks("shots", catalog_items_health("shots", ShotsStage.name, video_items))
keyframes_checks = decade_checks(  # shots and keyframes come from one stage (ledger "shots")
    "keyframes", catalog_items_health("keyframes", ShotsStage.name, video_items)
)
frame_text_checks = decade_checks("frame_text", _frame_text_health)
