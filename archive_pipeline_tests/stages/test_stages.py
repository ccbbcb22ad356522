"""Stage modules (and core's embedders) stay light: Ray workers import them without Dagster or
LanceDB, and models load in setup(), not at import."""

import subprocess
import sys

from archive_pipeline_tests.helpers import REPO

LOADS_ITS_LIBRARY = {
    "pyannote_offline",  # imports pyannote.audio on purpose: loaded by DiarizeStage.setup() only
    "derived",  # diarised_segments from committed tables: runs in the Dagster process, on Lance
}


def test_stage_modules_do_not_import_dagster_or_lancedb():
    modules = sorted(
        p.stem
        for p in (REPO / "archive_pipeline/stages").glob("*.py")
        if p.stem != "__init__" and p.stem not in LOADS_ITS_LIBRARY
    )
    assert {"transcription", "diarisation", "shot_boundaries", "partition"} <= set(modules)
    code = (
        "import sys, archive_pipeline.core.compute, archive_pipeline.core.embedders;"
        + "".join(f"import archive_pipeline.stages.{m};" for m in modules)
        + "print(sorted(m for m in ('dagster', 'lancedb', 'lance', 'ray', 'torch', 'rapidocr',"
        " 'open_clip', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_stage_result_is_rebuilt_from_the_rows_it_made():
    """`value_from_rows(rows(value))` gives back a result that makes the same rows: what a copy
    from another decade and a moved file's re-keying rely on. Typed results, no model loaded."""
    import pyarrow as pa

    from archive_pipeline.core.embedders import ClipSettings
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.diarisation import DiarizeStage, SpeakerTurns
    from archive_pipeline.stages.embeddings import EmbedItem, SegmentEmbeddingStage, Vectors
    from archive_pipeline.stages.ocr import (
        FrameText,
        FrameTexts,
        FrameTextStage,
        KeyframeRef,
        OcrItem,
        TextLine,
    )
    from archive_pipeline.stages.shots import ShotsAndKeyframes, ShotsStage
    from archive_pipeline.stages.transcription import TranscribeStage, Transcript

    store = LocalStore(".")
    video = CatalogItem("a.mp4", "a.mp4", "m1", "sha", 4.0, speakers=("Host",))
    refs = (KeyframeRef("k0", 0, 0, 0.5), KeyframeRef("k1", 1, 1, 2.5))
    line = TextLine("EVENING NEWS", 0.9, (1, 2, 3, 4, 5, 6, 7, 8))
    texts = (f"segment {i}" for i in range(2))
    entries = tuple({"payload": text, "source_id": f"s{i}"} for i, text in enumerate(texts))
    cases = [
        (
            TranscribeStage(store),
            video,
            Transcript(
                "en",
                [
                    {"start_s": 0.0, "end_s": 1.5, "text": "Good evening.", "language": "en"},
                    {"start_s": 1.5, "end_s": 3.0, "text": "Guten Abend.", "language": "de"},
                ],
            ),
        ),
        (
            DiarizeStage(store),
            video,
            SpeakerTurns(
                [
                    {"start": 0.0, "end": 1.5, "speaker": "SPEAKER_00", "embedding": [0.5, 0.25]},
                    {"start": 1.5, "end": 3.0, "speaker": "SPEAKER_01", "embedding": [0.25, 0.5]},
                ]
            ),
        ),
        (
            ShotsStage(store),
            video,
            ShotsAndKeyframes(
                [{"start_frame": 0, "end_frame": 49, "start_s": 0.0, "end_s": 2.0}],
                [{"frame_index": 12, "shot_index": 0, "time_s": 0.5, "thumbnail": b"jpeg"}],
                frames=50,
            ),
        ),
        (
            FrameTextStage(store),
            OcrItem(video, refs, "sel"),
            FrameTexts(
                [FrameText(refs[0], [line], "Latin", 640, 360), FrameText(refs[1], [], "Latin")]
            ),
        ),
        (
            SegmentEmbeddingStage(ClipSettings()),
            EmbedItem("a.mp4", "m1", entries, "c"),
            Vectors([[0.5, 0.5], [0.25, 0.75]]),
        ),
    ]
    for stage, item, value in cases:
        rows = stage.rows(item, value, decade="1990s")
        assert all(rows.values()), stage.name
        tables = {name: pa.Table.from_pylist(table_rows) for name, table_rows in rows.items()}
        rebuilt = stage.value_from_rows(tables, item)
        assert type(rebuilt) is type(value), stage.name
        assert stage.rows(item, rebuilt, decade="1990s") == rows, stage.name
