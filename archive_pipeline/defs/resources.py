"""Resources for every asset: the embedded local default, switched to S3 / a Ray cluster /
GPU models by environment variables that are read when a run uses them, not when these
definitions load (`archive_pipeline.settings`; README "Production settings")."""

from __future__ import annotations

import dagster as dg

from archive_pipeline.resources import (
    CheckSettings,
    InboxMediaStore,
    LanceWarehouse,
    RayResource,
    SearchIndex,
    SpeechModels,
    VisionModels,
)


@dg.definitions
def resources() -> dg.Definitions:
    """The resources shared by every area."""
    return dg.Definitions(
        resources={
            "media_store": InboxMediaStore(),
            "warehouse": LanceWarehouse(),
            "ray": RayResource(),
            "speech_models": SpeechModels(),
            "vision_models": VisionModels(),
            "search_index": SearchIndex(),
            "check_settings": CheckSettings(),
        }
    )
