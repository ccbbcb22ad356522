"""Per-decade checks of the speech assets: failures, and rows for every item with audio."""

from archive_pipeline.defs.checks import decade_checks
from archive_pipeline.health import derived_health, stage_health
from archive_pipeline.stages.speech import DiarizeStage, TranscribeStage, speech_items


def _speech_health(asset: str, stage: str):
    def health(context, warehouse, decade):
        items, _ = speech_items(warehouse.read("media_catalog", {"decade": decade}))
        return stage_health(
            warehouse,
            asset=asset,
            stage=stage,
            decade=decade,
            expected=[item.uri for item in items],
        )

    return health


transcripts_checks = decade_checks(
    "transcripts", _speech_health("transcripts", TranscribeStage.name)
)
speaker_turns_checks = decade_checks(
    "speaker_turns", _speech_health("speaker_turns", DiarizeStage.name)
)
diarised_segments_checks = decade_checks(
    "diarised_segments",
    lambda context, warehouse, decade: derived_health(
        warehouse, asset="diarised_segments", decade=decade, sources=["transcripts"]
    ),
    failure_rate=False,
)
