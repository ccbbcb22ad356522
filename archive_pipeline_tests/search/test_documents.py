"""Speech documents (search/documents.py): what of the diarised speech becomes searchable."""

import pyarrow as pa

from archive_pipeline.search.documents import speech_documents


def row(index, text, *, source, suspect=None):
    return {
        "row_id": f"r{index}",
        "media_id": "m",
        "uri": "file:///m.wav",
        "segment_index": index,
        "source_segment_index": source,
        "start_s": float(index),
        "end_s": index + 1.0,
        "speaker": "SPEAKER_00",
        "speaker_name": None,
        "text": text,
        "language": "en",
        "created_at": None,
        "suspect": suspect,
    }


def test_suspect_speech_and_slivers_of_an_utterance_are_not_documents():
    rows = [
        row(0, "We walked across the ice to the lighthouse.", source=0),
        row(1, "왜?", source=1, suspect="unsure_short"),  # a hallucination on noise: flagged
        row(2, "Ja.", source=2),  # a whole short utterance: kept
        row(3, "The cranes are bigger", source=3),
        row(4, "és", source=3),  # a 2-letter sliver of utterance 3
        row(5, " ", source=4),
    ]
    texts = [d["text"] for d in speech_documents(pa.Table.from_pylist(rows))]
    assert texts == ["We walked across the ice to the lighthouse.", "Ja.", "The cranes are bigger"]


def test_a_page_is_one_document_per_passage_with_its_page_region_and_language():
    from archive_pipeline.search.documents import keyframe_documents, passage_id

    keyframe = {
        "row_id": "k1",
        "media_id": "scan",
        "uri": "file:///scan.tif",
        "shot_index": 1,  # the second page
        "keyframe_index": 1,
        "time_s": 0.0,
        "reason": "page",
        "created_at": None,
    }
    german = "Die neue Fähre nach Spandau fährt ab Montag, sagt der Rath der Stadt."
    english = "The new ferry to Spandau runs from Monday, the town council says."
    lines = [
        (100, german, "de"),
        (140, german, "de"),
        (260, english, "en"),  # after a blank line: another passage
        (300, english, "en"),
    ]
    rows = [
        {
            "keyframe_id": "k1",
            "line_index": i,
            "text": text.replace("s", "ſ"),  # as printed; documents take the search form
            "normalised": text,
            "box": [100.0, y, 900.0, y, 900.0, y + 30, 100.0, y + 30],
            "language": language,
            "image_width": 1000,
            "image_height": 2000,
        }
        for i, (y, text, language) in enumerate(lines)
    ]
    frame_text = pa.Table.from_pylist(rows)
    shots = pa.Table.from_pylist(
        [{"media_id": "scan", "shot_index": 1, "start_s": 0.0, "end_s": 0.0}]
    )
    segments = pa.table({"media_id": pa.array([], pa.string())})
    docs = keyframe_documents(pa.Table.from_pylist([keyframe]), shots, frame_text, segments)
    assert [d["source_id"] for d in docs] == [passage_id("k1", 0), passage_id("k1", 1)]
    assert [d["keyframe_id"] for d in docs] == ["k1", "k1"]
    assert [d["language"] for d in docs] == ["de", "en"]
    assert [d["page"] for d in docs] == [2, 2]
    assert docs[0]["text"] == f"{german} {german}"  # the search form, lines joined
    assert docs[0]["region"] == [0.1, 0.05, 0.9, 0.085]
    assert docs[1]["region"] == [0.1, 0.13, 0.9, 0.165]
