"""Per-decade checks of the speech assets: failures, and rows for every item with audio."""

from archive_pipeline.defs.checks import catalog_items_health, decade_checks
from archive_pipeline.health import derived_health
from archive_pipeline.stages.diarisation import DiarizeStage
from archive_pipeline.stages.speech import speech_items
from archive_pipeline.stages.transcription import TranscribeStage

transcripts_checks = decade_checks(
    "transcripts", catalog_items_health("transcripts", TranscribeStage.name, speech_items)
)
speaker_turns_checks = decade_checks(
    "speaker_turns", catalog_items_health("speaker_turns", DiarizeStage.name, speech_items)
)
diarised_segments_checks = decade_checks(
    "diarised_segments",
    lambda context, warehouse, decade: derived_health(
        warehouse, asset="diarised_segments", decade=decade, sources=["transcripts"]
    ),
    failure_rate=False,
)
