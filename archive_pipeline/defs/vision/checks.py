"""Per-decade checks of the vision assets: failures, and rows for every video and still."""

from archive_pipeline.defs.checks import catalog_items_health, decade_checks
from archive_pipeline.health import stage_health
from archive_pipeline.stages.ocr import KEYFRAME_REFS, FrameTextStage, ocr_items
from archive_pipeline.stages.shots import ShotsStage, video_items


def _frame_text_health(context, warehouse, decade):
    keyframes = warehouse.read("keyframes", {"decade": decade}, columns=KEYFRAME_REFS)
    videos, _ = video_items(warehouse.read("media_catalog", {"decade": decade}))
    items = ocr_items(videos, keyframes)
    return stage_health(
        warehouse,
        asset="frame_text",
        stage=FrameTextStage.name,
        decade=decade,
        expected=[item.ref.uri for item in items],
    )


def _videos(catalog):
    """The items that have shots: videos (a still's pages are keyframes without shots)."""
    items, skipped = video_items(catalog)
    return [i for i in items if i.kind != "image"], skipped


shots_checks = decade_checks("shots", catalog_items_health("shots", ShotsStage.name, _videos))
keyframes_checks = decade_checks(  # shots and keyframes come from one stage (ledger "shots")
    "keyframes", catalog_items_health("keyframes", ShotsStage.name, video_items)
)
frame_text_checks = decade_checks("frame_text", _frame_text_health)
