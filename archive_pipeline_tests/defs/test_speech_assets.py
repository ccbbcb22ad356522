"""The speech assets through Dagster: transcripts, speaker_turns, diarised_segments."""

import json

import pytest

from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.resources import SpeechModels
from archive_pipeline.defs.speech.assets import diarised_segments, speaker_turns, transcripts
from archive_pipeline.ops.exports import to_rttm, to_srt, to_webvtt
from archive_pipeline.quality import read_rttm
from archive_pipeline_tests import helpers
from archive_pipeline_tests.helpers import local_resources
from archive_pipeline_tests.speech_fixtures import dialogue, silence, video_without_audio

pytestmark = pytest.mark.slow
ASSETS = [media_catalog, transcripts, speaker_turns, diarised_segments]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("speech_inbox")
    (inbox / "1980s").mkdir()
    dialogue(inbox / "1980s/interview.wav")
    for leftover in inbox.glob("1980s/interview-turn*.wav"):
        leftover.unlink()
    (inbox / "1980s/interview.wav.json").write_text(json.dumps({"speakers": ["Host", "Guest"]}))
    silence(inbox / "1980s/silent_tape.wav")
    video_without_audio(inbox / "1980s/mute_film.mp4")
    return inbox


def run(inbox, warehouse):
    return helpers.materialize(
        ASSETS,
        partition_key="1980s",
        resources=local_resources(
            inbox,
            warehouse,
            speech_models=SpeechModels(whisper_model="tiny.en", whisper_options='{"beam_size": 1}'),
        ),
    )


@pytest.fixture(scope="module")
def materialized(archive, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("speech_wh")
    return run(archive, warehouse), warehouse


def test_speech_assets_attribute_speech_to_catalogue_names(archive, materialized):
    result, warehouse = materialized
    assert result.success
    wh = Warehouse(str(warehouse))
    segments = sorted(wh.read("diarised_segments").to_pylist(), key=lambda r: r["start_s"])
    assert [r["speaker_name"] for r in segments] == ["Host", "Guest", "Host", "Guest"]
    assert "lighthouse" in segments[-1]["text"].lower()
    assert all(w["speaker"] == r["speaker"] for r in segments for w in r["words"])
    transcripts_md = result.asset_materializations_for_node("transcripts")[0].metadata
    assert transcripts_md["files"].value == 2  # the mute film is skipped, not failed
    assert "mute_film.mp4: video without an audio stream" in transcripts_md["skipped"].value
    assert transcripts_md["failures"].value == 0
    ledger = {
        r["uri"].rsplit("/", 1)[-1]: r
        for r in wh.read("stage_items").to_pylist()
        if r["stage"] == "transcripts"
    }
    assert ledger["silent_tape.wav"]["status"] == "ok" and ledger["silent_tape.wav"]["n_rows"] == 0

    before = {
        name: wh.read(name).sort_by("row_id") for name in ("transcripts", "diarised_segments")
    }
    again = run(archive, warehouse)
    md = again.asset_materializations_for_node("transcripts")[0].metadata
    assert (md["computed"].value, md["reused_from_cache"].value, md["committed"].value) == (
        0,
        2,
        False,
    )
    md = again.asset_materializations_for_node("diarised_segments")[0].metadata
    # derived from the ledger: nothing read again, nothing written
    assert (md["rebuilt"].value, md["unchanged"].value, md["committed"].value) == (0, 1, False)
    for name, table in before.items():
        assert wh.read(name).sort_by("row_id").equals(table)


def test_exports_match_the_tables(archive, materialized, tmp_path):
    _, warehouse = materialized
    wh = Warehouse(str(warehouse))
    segments = [r for r in wh.read("diarised_segments").to_pylist() if "interview" in r["uri"]]
    turns = [r for r in wh.read("speaker_turns").to_pylist() if "interview" in r["uri"]]
    srt = to_srt(segments)
    assert srt.count(" --> ") == len(segments) and srt.startswith("1\n00:00:0")
    assert "Host: " in srt and "Guest: " in srt
    vtt = to_webvtt(segments)
    assert vtt.startswith("WEBVTT") and vtt.count("<v Host>") == 2 and vtt.count("<v Guest>") == 2
    (tmp_path / "x.rttm").write_text(to_rttm(turns, file_id="interview"))
    back = read_rttm(tmp_path / "x.rttm")
    expected = sorted((t["start_s"], t["end_s"], t["speaker"]) for t in turns)
    assert [(round(a, 3), round(b, 3), s) for a, b, s in back] == [
        (round(a, 3), round(b, 3), s) for a, b, s in expected
    ]


def test_speaker_turns_reads_the_audio_transcripts_decoded(archive, tmp_path, monkeypatch):
    """Decode once per run: speaker_turns diarises the audio transcripts kept, without decoding
    again (decoding is made to fail here), and the kept audio is gone after the run."""
    import os

    import archive_pipeline.core.audio as audio

    def no_second_decode(path):
        raise AssertionError(f"speaker_turns decoded {path} again")

    monkeypatch.setattr(audio, "decode_audio", no_second_decode)
    result = run(archive, tmp_path / "wh")
    assert result.success
    turns = Warehouse(str(tmp_path / "wh")).read("speaker_turns").to_pylist()
    assert {r["speaker"] for r in turns if "interview" in r["uri"]} == {"SPEAKER_00", "SPEAKER_01"}
    assert not (audio.Path(os.environ["ARCHIVE_HOME"]) / "cache/audio").exists()


def test_diarised_segments_commit_by_group_and_drop_items_gone(
    archive, materialized, tmp_path, monkeypatch
):
    """One media item per commit gives the same rows as the whole decade at once; an item that
    left the decade loses its rows."""
    import shutil

    import archive_pipeline.defs.speech.assets as speech_assets

    monkeypatch.setattr(speech_assets, "DIARISE_GROUP", 1)
    inbox = tmp_path / "inbox"
    shutil.copytree(archive, inbox)
    assert run(inbox, tmp_path / "wh").success
    wh, whole = Warehouse(str(tmp_path / "wh")), Warehouse(str(materialized[1]))
    columns = ["media_id", "segment_index", "text", "speaker", "speaker_name", "start_s"]

    def rows(warehouse):
        return warehouse.read("diarised_segments", columns=columns).sort_by(
            [("media_id", "ascending"), ("segment_index", "ascending")]
        )

    assert rows(wh).num_rows > 0 and rows(wh).equals(rows(whole))
    # new catalogue names: that item's rows are rebuilt (its inputs' fingerprint changed)
    (inbox / "1980s/interview.wav.json").write_text(json.dumps({"speakers": ["Anna", "Ben"]}))
    renamed = run(inbox, tmp_path / "wh")
    md = renamed.asset_materializations_for_node("diarised_segments")[0].metadata
    assert (md["rebuilt"].value, md["committed"].value) == (1, True)
    names = wh.read("diarised_segments", columns=["speaker_name"]).column("speaker_name")
    assert set(names.to_pylist()) == {"Anna", "Ben"}
    (inbox / "1980s/interview.wav").unlink()
    assert run(inbox, tmp_path / "wh").success
    assert rows(wh).num_rows == 0  # the silent tape has no segments; the interview left


def test_turns_keep_speaker_embeddings_and_a_voice_is_found_by_them(
    materialized, monkeypatch, capsys
):
    """Every turn of the interview has a 192-d CAM++ embedding; asked for the Host, the voices
    ranked are the Host first, then the Guest (its own item included); another item has none
    of these voices to offer, and an unknown speaker is a clear error."""
    from archive_pipeline.search import cli
    from archive_pipeline.search.voices import VoiceError, find_voice

    _, warehouse = materialized
    wh = Warehouse(str(warehouse))
    turns = [r for r in wh.read("speaker_turns").to_pylist() if "interview" in r["uri"]]
    assert turns and all(len(t["embedding"]) == 192 for t in turns)
    media_id = turns[0]["media_id"]
    ranked = find_voice(wh, media_id, "host", include_same_item=True)
    assert [(m.speaker_name, m.turns) for m in ranked] == [("Host", 2), ("Guest", 2)]
    assert ranked[0].similarity > ranked[1].similarity
    assert find_voice(wh, media_id, "SPEAKER_00") == []  # no other item has voices
    with pytest.raises(VoiceError, match="no speaker embedding"):
        find_voice(wh, media_id, "Nobody")
    monkeypatch.setenv("ARCHIVE_WAREHOUSE", str(warehouse))
    assert cli.main(["--voice", media_id, "Nobody"]) == 2
    assert "no speaker embedding" in capsys.readouterr().err
