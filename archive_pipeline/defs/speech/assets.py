"""Speech assets: transcripts (faster-whisper), speaker_turns and diarised_segments."""

import collections

import dagster as dg

from archive_pipeline.config.models import models_cache_dir
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.checks import decade_checks
from archive_pipeline.defs.derived_assets import Derivation, DerivedRun, derived_asset
from archive_pipeline.defs.health import derived_health
from archive_pipeline.defs.reporting import (
    markdown_table,
    preview,
)
from archive_pipeline.defs.stage_assets import StageRun, stage_asset
from archive_pipeline.stages.diarisation import DiarizeStage
from archive_pipeline.stages.speech import diarised_rows
from archive_pipeline.stages.transcription import TranscribeStage

DIARISE_GROUP = 100  # media items per diarised_segments commit


def _transcripts(run: StageRun) -> dict:
    spoken = run.report.read(columns=["media_id", "language"]).group_by(["media_id", "language"])
    spoken = spoken.aggregate([]).column("language").fill_null("none").to_pylist()
    return {
        "files": len(run.items),
        "hours_of_audio": round(sum(i.duration_s or 0 for i in run.items) / 3600, 4),
        "segments": run.report.write.rows,
        # files with speech in each language (a code-switching file counts in each)
        "languages": dict(collections.Counter(spoken)),
        "model": run.stage.model_id,
        "preview": dg.MetadataValue.md(
            preview(run.report, ["file", "text", "start_s", "end_s", "language"])
        ),
    }


transcripts, transcripts_checks = stage_asset(
    TranscribeStage,
    description="Speech to text of the decade's audio with faster-whisper (VAD, language, "
    "word times).",
    group="speech",
    kinds={"lance", "ray", "whisper"},
    deps=[media_catalog],
    resources=["media_store", "speech_models"],
    build=lambda r: TranscribeStage(
        r.media_store.get_store(),
        r.speech_models.whisper(),
        resources=r.ray.resources_of(TranscribeStage),
        model_cache=str(models_cache_dir()),
        audio_cache=r.speech_models.audio_cache(),
    ),
    describe=_transcripts,
)


def _speaker_turns(run: StageRun) -> dict:
    speakers = (
        run.report.read(columns=["uri", "speaker"])
        .group_by(["uri"])
        .aggregate([("speaker", "count_distinct")])
        .sort_by("uri")
        .to_pylist()
    )
    return {
        "files": len(run.items),
        "turns": run.report.write.rows,
        "speakers_per_file": {
            r["uri"].rsplit("/", 1)[-1]: r["speaker_count_distinct"] for r in speakers[:200]
        },
        "backend": run.stage.settings.resolved_backend,
        "model": run.stage.model_id,
    }


speaker_turns, speaker_turns_checks = stage_asset(
    DiarizeStage,
    description="Who spoke when in the decade's audio (pyannote.audio, or the offline speaker "
    "encoder).",
    group="speech",
    kinds={"lance", "ray"},
    deps=[media_catalog, transcripts],  # after it: reads the audio transcripts decoded
    resources=["media_store", "speech_models"],
    build=lambda r: DiarizeStage(
        r.media_store.get_store(),
        r.speech_models.diarisation(),
        resources=r.ray.resources_of(DiarizeStage),
        audio_cache=r.speech_models.audio_cache(),
    ),
    describe=_speaker_turns,
)


DIARISED_VERSION = "4"  # 2: rows keyed by their inputs' fingerprint; 3: URIs in it; 4: words whole


def _diarised(run: DerivedRun) -> Derivation:
    wh, scope = run.warehouse, run.scope
    catalog = wh.read("media_catalog", scope, columns=["media_id", "speakers"]).to_pylist()
    names = {r["media_id"]: tuple(r["speakers"] or ()) for r in catalog}
    # Only items whose transcript or turns (or catalogue names) changed are rebuilt: the ledger
    # says which, so an unchanged decade reads no transcript and writes nothing.
    extra = {
        media: ["names:" + "|".join(names[media])]
        for media in run.ledger.productive & set(names)
        if run.ledger.ok(media, "transcripts")
    }

    def describe(write) -> dict:
        voices = wh.read("diarised_segments", scope, columns=["media_id", "speaker"])
        first = wh.read(
            "diarised_segments",
            scope,
            columns=["uri", "text", "start_s", "end_s", "speaker", "speaker_name"],
            limit=10,
        )
        return {
            "speakers": voices.group_by(["media_id", "speaker"]).aggregate([]).num_rows,
            "preview": dg.MetadataValue.md(
                markdown_table(
                    first.to_pylist(),
                    ["file", "text", "start_s", "end_s", "speaker", "speaker_name"],
                    total=write.rows,
                )
            ),
        }

    return Derivation(
        extra,
        # a group of media items at a time: memory follows the group, not the decade (words are
        # ~6 MB per hour of speech)
        build=lambda group: diarised_rows(
            wh.read("transcripts", scope, filter=group),
            wh.read("speaker_turns", scope, filter=group),
            decade=run.decade,
            names=names,
        ),
        salt=f"diarised:{DIARISED_VERSION}",
        group_size=DIARISE_GROUP,
        describe=describe,
    )


diarised_segments = derived_asset(
    "diarised_segments",
    deps=[transcripts, speaker_turns],
    code_version=DIARISED_VERSION,
    description="Transcript segments split at speaker changes, every word attributed to a speaker.",
    group="speech",
    derive=_diarised,
)


diarised_segments_checks = decade_checks(
    "diarised_segments",
    lambda context, warehouse, decade: derived_health(
        warehouse, asset="diarised_segments", decade=decade, sources=["transcripts"]
    ),
    failure_rate=False,
)
