"""The same content in two decades is computed once: the second decade's rows are made from
the first's result (rebuilt from its rows by the stage), with the second decade's identity."""

from __future__ import annotations

from archive_pipeline.core.compute import InlineCompute
from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.stages.base import CatalogItem
from archive_pipeline.stages.diarisation import DiarizationSettings, DiarizeStage, SpeakerTurns
from archive_pipeline.stages.partition import process_partition
from archive_pipeline.stages.shots import ShotsAndKeyframes, ShotsStage
from archive_pipeline.stages.transcription import TranscribeStage, Transcript

WORDS = [{"start": 0.5, "end": 0.9, "word": " Ask", "probability": 0.93}]
CANNED = {
    "transcripts": Transcript(
        "en",
        [
            {
                "start_s": 0.5,
                "end_s": 2.0,
                "text": "Ask not",
                "avg_logprob": -0.2,
                "no_speech_prob": 0.01,
                "words": WORDS,
            },
            {
                "start_s": 2.5,
                "end_s": 4.0,
                "text": "what your country",
                "avg_logprob": -0.3,
                "no_speech_prob": 0.02,
                "words": [],
            },
        ],
    ),
    "speaker_turns": SpeakerTurns(
        [
            {"start": 0.4, "end": 2.1, "speaker": "SPEAKER_00"},
            {"start": 2.4, "end": 4.1, "speaker": "SPEAKER_01"},
        ]
    ),
    "shots": ShotsAndKeyframes(
        frames=100,
        width=320,
        height=240,
        shots=[
            {
                "start_frame": 0,
                "end_frame": 49,
                "start_s": 0.0,
                "end_s": 2.0,
                "boundary_score": 0.9,
            },
            {
                "start_frame": 50,
                "end_frame": 99,
                "start_s": 2.0,
                "end_s": 4.0,
                "boundary_score": 0.8,
            },
        ],
        keyframes=[
            {
                "shot_index": i,
                "frame_index": 25 + 50 * i,
                "time_s": 1.0 + 2 * i,
                "phash": f"{i:016x}",
                "thumbnail": bytes([i]) * 100,
                "thumbnail_format": "jpeg",
                "thumbnail_width": 160,
                "thumbnail_height": 120,
                "full_frame": None,
                "replaces": [],
            }
            for i in range(2)
        ],
    ),
}


def canned(stage_class, calls: list, **kw):
    class Canned(stage_class):
        def setup(self):
            pass

        def process(self, item):
            calls.append(item.uri)
            return CANNED[self.name]

    return Canned(LocalStore("/nonexistent"), **kw)


def _item(uri: str, media_id: str = "m1", sha256: str = "same") -> CatalogItem:
    return CatalogItem(uri, uri.rsplit("/", 1)[-1], media_id, sha256, 4.0, "en", ("Ann", "Bo"))


STAGES = [
    (TranscribeStage, {}),
    (DiarizeStage, {"settings": DiarizationSettings(backend="offline")}),
    (ShotsStage, {"detector": "content"}),
]
SKIP = {"row_id", "decade", "uri", "created_at"}  # what the second decade's rows own


def _stripped(rows: list[dict]) -> list[str]:
    return sorted(repr({k: v for k, v in row.items() if k not in SKIP}) for row in rows)


def test_content_done_in_another_decade_is_not_computed_again_and_rows_match(tmp_path):
    wh = Warehouse(str(tmp_path / "wh"))
    for stage_class, kw in STAGES:
        calls: list = []
        stage = canned(stage_class, calls, **kw)
        first = process_partition(
            stage=stage,
            decade="1960s",
            items=[_item("file:///in/1960s/tape.wav")],
            warehouse=wh,
            compute=InlineCompute(),
        )
        second = process_partition(
            stage=stage,
            decade="1990s",
            items=[_item("file:///in/1990s/copy.wav"), _item("file:///in/1990s/b.wav", "m2", "b")],
            warehouse=wh,
            compute=InlineCompute(),
        )
        assert calls == ["file:///in/1960s/tape.wav", "file:///in/1990s/b.wav"], stage.name
        assert (first.n_computed, second.n_computed, second.n_copied) == (1, 1, 1)
        for table in stage.tables:
            before = wh.read(table, {"decade": "1960s"}).to_pylist()
            after = [
                row
                for row in wh.read(table, {"decade": "1990s"}).to_pylist()
                if row["media_id"] == "m1"
            ]
            assert before and len(after) == len(before), table
            assert all(row["uri"] == "file:///in/1990s/copy.wav" for row in after)
            assert not {r["row_id"] for r in before} & {r["row_id"] for r in after}
            assert _stripped(before) == _stripped(after), table
        ledger = wh.read("stage_items", {"decade": "1990s", "stage": stage.name}).to_pylist()
        assert {row["status"] for row in ledger} == {"ok"} and len(ledger) == 2
