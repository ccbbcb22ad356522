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
