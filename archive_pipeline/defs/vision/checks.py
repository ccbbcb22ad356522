"""Per-decade checks of the vision assets: failures, and rows for every video."""

from archive_pipeline.defs.checks import decade_checks
from archive_pipeline.health import stage_health
from archive_pipeline.stages.ocr import FrameTextStage, ocr_items
from archive_pipeline.stages.shots import ShotsStage, video_items


def _videos(warehouse, decade):
    return video_items(warehouse.read("media_catalog", {"decade": decade}))[0]


def _shots_health(asset: str):
    def health(context, warehouse, decade):
        return stage_health(
            warehouse,
            asset=asset,
            stage=ShotsStage.name,
            decade=decade,
            expected=[video.uri for video in _videos(warehouse, decade)],
        )

    return health


def _frame_text_health(context, warehouse, decade):
    keyframes = warehouse.read(
        "keyframes",
        {"decade": decade},
        columns=["row_id", "media_id", "keyframe_index", "shot_index", "time_s", "cache_key"],
    )
    items = ocr_items(_videos(warehouse, decade), keyframes)
    return stage_health(
        warehouse,
        asset="frame_text",
        stage=FrameTextStage.name,
        decade=decade,
        expected=[item.ref.uri for item in items],
    )


shots_checks = decade_checks("shots", _shots_health("shots"))
keyframes_checks = decade_checks("keyframes", _shots_health("keyframes"))
frame_text_checks = decade_checks("frame_text", _frame_text_health)
