"""Per-decade checks of shots and keyframes: failures, and rows for every video and still
(frame_text's come with its asset)."""

from archive_pipeline.defs.checks import catalog_items_health, decade_checks
from archive_pipeline.stages.shots import ShotsStage, video_items


def _videos(catalog):
    """The items that have shots: videos (a still's pages are keyframes without shots)."""
    items, skipped = video_items(catalog)
    return [i for i in items if i.kind != "image"], skipped


shots_checks = decade_checks("shots", catalog_items_health("shots", ShotsStage.name, _videos))
keyframes_checks = decade_checks(  # shots and keyframes come from one stage (ledger "shots")
    "keyframes", catalog_items_health("keyframes", ShotsStage.name, video_items)
)
