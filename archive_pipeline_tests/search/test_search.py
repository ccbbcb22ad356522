"""search_documents assembly, indexes and the search API on a small archive built here (real
multilingual USE vectors); relevance on the demo archive is in test_demo.py."""

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest

from archive_pipeline.core.embedders import (
    ClipSettings,
    TextEmbedder,
    text_embedding_dim,
    text_model_id,
)
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.warehouse import VectorDimensionError, Warehouse
from archive_pipeline.search import Searcher, SearchError, reciprocal_rank_fusion
from archive_pipeline.search.documents import (
    KEYFRAME_COLUMNS,
    assemble,
    keyframe_documents,
    speech_documents,
)
from archive_pipeline.search.indexes import TABLE, IndexSettings, ensure_indexes
from archive_pipeline.search.temporal import parse_temporal
from archive_pipeline.stages.embeddings import segment_items

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CLIP = ClipSettings()  # the offline default: multilingual USE from its wheel


def segment(media, uri, i, start, end, text, speaker, name=None, language="en"):
    return {
        "row_id": row_id("diarised_segments", "x", media, str(i)),
        "media_id": media,
        "uri": uri,
        "segment_index": i,
        "start_s": start,
        "end_s": end,
        "text": text,
        "speaker": speaker,
        "speaker_name": name,
        "language": language,
        "created_at": NOW,
    }


def keyframe(media, uri, shot, i, time_s):
    return {
        "row_id": row_id("keyframes", "x", media, str(i)),
        "media_id": media,
        "uri": uri,
        "shot_index": shot,
        "keyframe_index": i,
        "time_s": time_s,
        "reason": "shot",
        "created_at": NOW,
    }


def line(keyframe_id, i, text, language="en"):
    """A frame_text row: a line across a 640x360 frame, 40 px high."""
    box = [20.0, 40.0 + 50 * i, 620.0, 40.0 + 50 * i, 620.0, 80.0 + 50 * i, 20.0, 80.0 + 50 * i]
    return {
        "keyframe_id": keyframe_id,
        "line_index": i,
        "text": text,
        "normalised": text,
        "box": box,
        "language": language,
        "image_width": 640,
        "image_height": 360,
    }


HARBOUR = "file:///inbox/harbour.wav"
NEWS = "file:///inbox/news.mp4"
REEL = "file:///inbox/reel.mp4"
ARCHIVE = {
    "1980s": {
        "segments": [
            segment(
                "harbour", HARBOUR, 0, 0.0, 4.0, "Do you remember the winter when the river froze?",
                "SPEAKER_00", "Interviewer",
            ),
            segment(
                "harbour", HARBOUR, 1, 4.0, 9.0,
                "I remember it well. We walked across the ice to the old lighthouse.",
                "SPEAKER_01", "Dock worker",
            ),
            segment(
                "harbour", HARBOUR, 2, 9.0, 13.0,
                "Im Winter war der Fluss zugefroren, und wir gingen zum Leuchtturm.",
                "SPEAKER_00", "Interviewer", language="de",
            ),
        ],
        "shots": [],
        "keyframes": [],
        "frame_text": [],
        "catalog": [{"media_id": "harbour", "title": "Harbour interview"}],
    },
    "1990s": {
        "segments": [
            segment(
                "news", NEWS, 0, 0.2, 2.8, "The city council approved the new tram line today.",
                "SPEAKER_00",
            ),
            segment(
                "news", NEWS, 1, 3.1, 5.8, "Fishermen report a record catch in the northern bay.",
                "SPEAKER_00",
            ),
        ],
        "shots": [
            {"media_id": "news", "shot_index": 0, "start_s": 0.0, "end_s": 3.0},
            {"media_id": "news", "shot_index": 1, "start_s": 3.0, "end_s": 6.0},
        ],
        "keyframes": [keyframe("news", NEWS, 0, 0, 1.5), keyframe("news", NEWS, 1, 1, 4.5)],
        "frame_text": [
            line(row_id("keyframes", "x", "news", "0"), 0, "TRAM LINE APPROVED"),
            line(row_id("keyframes", "x", "news", "1"), 0, "RECORD CATCH"),
        ],
        "catalog": [{"media_id": "news", "title": None}],
    },
    "1960s": {
        "segments": [],
        "shots": [
            {"media_id": "reel", "shot_index": 0, "start_s": 0.0, "end_s": 2.0},
            {"media_id": "reel", "shot_index": 1, "start_s": 2.0, "end_s": 4.0},
        ],
        "keyframes": [keyframe("reel", REEL, 0, 0, 1.0), keyframe("reel", REEL, 1, 1, 3.0)],
        "frame_text": [
            line(row_id("keyframes", "x", "reel", "0"), 0, "CITY CENTRE"),
        ],
        "catalog": [{"media_id": "reel", "title": "Reel 42"}],
    },
}  # fmt: skip

COLUMNS = {
    "segments": list(ARCHIVE["1980s"]["segments"][0]),
    "shots": ["media_id", "shot_index", "start_s", "end_s"],
    "keyframes": KEYFRAME_COLUMNS,
    "frame_text": ["keyframe_id", "line_index", "text", "box"],
    "catalog": ["media_id", "title"],
    "text_embeddings": ["source_id", "text", "model_id", "vector", "created_at"],
    "image_embeddings": ["keyframe_id", "model_id", "vector"],
}


def table(name: str, rows: list[dict]) -> pa.Table:
    if rows:
        return pa.Table.from_pylist(rows)
    return pa.table({column: pa.array([], pa.string()) for column in COLUMNS[name]})


def embedded(decade: str, embedder: TextEmbedder) -> pa.Table:
    """segment_embeddings rows as the stage makes them (same items, same texts)."""
    parts = ARCHIVE[decade]
    segments = table("segments", parts["segments"])
    docs = keyframe_documents(
        table("keyframes", parts["keyframes"]),
        table("shots", parts["shots"]),
        table("frame_text", parts["frame_text"]),
        segments,
    )
    rows = []
    for item in segment_items(segments, docs):
        vectors = embedder.embed([e["payload"] for e in item.entries])
        for entry, vector in zip(item.entries, vectors, strict=True):
            rows.append(
                {
                    "source_id": entry["source_id"],
                    "text": entry["payload"],
                    "model_id": embedder.model_id,
                    "vector": vector.tolist(),
                    "created_at": NOW,
                }
            )
    return table("text_embeddings", rows)


def assembled(decade: str, text_embeddings: pa.Table):
    parts = ARCHIVE[decade]
    return assemble(
        decade=decade,
        segments=table("segments", parts["segments"]),
        keyframes=table("keyframes", parts["keyframes"]),
        shots=table("shots", parts["shots"]),
        frame_text=table("frame_text", parts["frame_text"]),
        text_embeddings=text_embeddings,
        image_embeddings=table("image_embeddings", []),
        catalog=table("catalog", parts["catalog"]),
        text_model_id=text_model_id(CLIP),
        image_model_id=None,
        dim=text_embedding_dim(CLIP),
    )


@pytest.fixture(scope="module")
def embedder():
    return TextEmbedder(CLIP)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, embedder):
    """A warehouse whose search_documents holds three decades, indexed as the asset does."""
    wh = Warehouse(str(tmp_path_factory.mktemp("search_wh")))
    for decade in ARCHIVE:
        assembly = assembled(decade, embedded(decade, embedder))
        wh.replace(TABLE, assembly.rows, scope={"decade": decade}, dim=assembly.dim)
    indexes = ensure_indexes(wh.table(TABLE), IndexSettings())
    wh.maintain(TABLE)
    searcher = Searcher(wh, clip=CLIP)
    searcher._embedder = embedder  # the module's model: loaded once
    return {"wh": wh, "searcher": searcher, "indexes": indexes}


def test_keyframe_documents_join_on_screen_text_and_overlapping_speech():
    parts = ARCHIVE["1990s"]
    docs = keyframe_documents(
        table("keyframes", parts["keyframes"]),
        table("shots", parts["shots"]),
        table("frame_text", parts["frame_text"]),
        table("segments", parts["segments"]),
    )
    first, second = docs
    assert (first["start_s"], first["end_s"], first["time_s"]) == (0.0, 3.0, 1.5)
    assert first["ocr_text"] == "TRAM LINE APPROVED"
    assert first["speech_text"] == "The city council approved the new tram line today."
    assert first["text"] == "TRAM LINE APPROVED\nThe city council approved the new tram line today."
    assert second["speech_text"].startswith("Fishermen") and second["speaker"] == "SPEAKER_00"


def test_keyframe_spans_split_long_shots_half_way():
    media, uri = "m", "file:///m.mp4"
    frames = [keyframe(media, uri, 0, i, t) for i, t in enumerate([5.0, 15.0, 25.0])]
    segs = [segment(media, uri, 0, 0.0, 8.0, "early words", "A"),
            segment(media, uri, 1, 8.0, 30.0, "late words", "B")]  # fmt: skip
    shots = [{"media_id": media, "shot_index": 0, "start_s": 0.0, "end_s": 30.0}]
    docs = keyframe_documents(
        table("keyframes", frames), table("shots", shots), table("frame_text", []), table("x", segs)
    )
    assert [(d["start_s"], d["end_s"]) for d in docs] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    assert docs[0]["speech_text"] == "early words late words"
    assert docs[0]["speaker"] == "A"  # 8 s of A against 2 s of B
    assert docs[1]["speech_text"] == "late words" and docs[1]["speaker"] == "B"
    assert docs[0]["ocr_text"] is None


def test_assembly_rows_vectors_and_thumbnail_references(embedder):
    assembly = assembled("1990s", embedded("1990s", embedder))
    rows = {(r["kind"], r["time_s"]): r for r in assembly.rows}
    assert len(rows) == 4 and assembly.with_vector == 4 and not assembly.stale_vectors
    speech = rows[("speech", 0.2)]
    assert speech["keyframe_id"] == row_id("keyframes", "x", "news", "0")  # on screen then
    assert len(speech["vector"]) == text_embedding_dim(CLIP)
    assert abs(np.linalg.norm(speech["vector"]) - 1) < 1e-5
    frame = rows[("keyframe", 1.5)]
    assert frame["ocr_text"] == "TRAM LINE APPROVED" and frame["keyframe_id"] == frame["source_id"]
    # the reel's second keyframe has neither text nor image vector: not a document
    assert len(assembled("1960s", embedded("1960s", embedder)).rows) == 1


def test_a_changed_text_keeps_its_row_without_a_stale_vector(embedder):
    vectors = embedded("1990s", embedder).to_pylist()
    vectors[0]["text"] = "what was embedded before OCR changed"
    assembly = assembled("1990s", table("text_embeddings", vectors))
    stale = [r for r in assembly.rows if r["source_id"] == vectors[0]["source_id"]]
    assert stale[0]["vector"] is None and assembly.stale_vectors == [vectors[0]["source_id"]]
    assert len(assembly.rows) == 4


def test_indexes_exist_and_vectors_are_fixed_size(archive):
    assert archive["indexes"]["text"] == "FTS"
    assert archive["indexes"]["decade"] == "Bitmap" and archive["indexes"]["kind"] == "Bitmap"
    assert "vector" not in archive["indexes"]  # 7 rows: exact search
    field = archive["wh"].table(TABLE).schema.field("vector")
    assert pa.types.is_fixed_size_list(field.type) and field.type.list_size == text_embedding_dim(
        CLIP
    )


def test_text_search_finds_words_and_on_screen_text(archive):
    results = archive["searcher"].search(query="tram line", mode="text", temporal=False)
    assert results.hits and all(hit.uri == NEWS for hit in results.hits)
    assert {hit.kind for hit in results.hits} == {"speech", "keyframe"}
    top = results.hits[0]
    assert top.deep_link == f"{NEWS}#t={top.time_s:.2f}"
    reel = archive["searcher"].search(query="city centre", mode="text").hits
    assert reel[0].uri == REEL and reel[0].kind == "keyframe" and reel[0].ocr_text == "CITY CENTRE"


def test_vector_search_finds_a_paraphrase(archive):
    results = archive["searcher"].search(query="frozen river in winter", mode="vector", limit=3)
    assert results.hits[0].uri == HARBOUR
    query = archive["searcher"].embed("frozen river in winter")
    expected = float(np.dot(query, _vector(archive, results.hits[0])))
    assert results.hits[0].score == pytest.approx(expected, abs=1e-4)
    assert "the river froze" in results.hits[0].text


def _vector(archive, hit):
    rows = archive["wh"].read(TABLE, columns=["row_id", "vector"]).to_pylist()
    return next(np.asarray(r["vector"]) for r in rows if r["row_id"] == hit.row_id)


def test_hybrid_fuses_both_rankings(archive):
    results = archive["searcher"].search(query="record catch of fish", mode="hybrid", limit=4)
    assert results.retrievers == ["text", "vector"]
    assert results.hits[0].uri == NEWS and "catch" in results.hits[0].text.lower()
    assert set(results.hits[0].matched_by) == {"text", "vector"}
    scores = [hit.score for hit in results.hits]
    assert scores == sorted(scores, reverse=True)


def test_filters_prune_by_decade_kind_and_speaker(archive):
    searcher = archive["searcher"]
    only_60s = searcher.search(query="the centre of the city", decades=["1960s"])
    assert only_60s.hits and {hit.decade for hit in only_60s.hits} == {"1960s"}
    assert only_60s.where == "decade IN ('1960s')"
    # the tram news is of the 1990s: in the 1960s nothing is close enough to be returned
    elsewhere = searcher.search(query="tram line approved", decades=["1960s"])
    assert elsewhere.hits == [] and elsewhere.below_floor >= 1
    frames = searcher.search(query="tram", kinds=["keyframe"], mode="hybrid")
    assert frames.hits and {hit.kind for hit in frames.hits} == {"keyframe"}
    worker = searcher.search(query="remember", speaker="dock worker", mode="hybrid")
    assert worker.hits and {hit.speaker for hit in worker.hits} == {"Dock worker"}


def test_language_filter_and_a_german_query_finding_english_speech(archive):
    searcher = archive["searcher"]
    german = searcher.search(query="the river froze in winter", languages=["de"], mode="vector")
    assert german.where == "language IN ('de')" and german.languages == ("de",)
    assert [hit.text for hit in german.hits] == [
        "Im Winter war der Fluss zugefroren, und wir gingen zum Leuchtturm."
    ]
    # one multilingual space: a German question ranks the English answer above other English
    english = searcher.search(query="Wir liefen über das Eis", languages=["en"], mode="vector")
    assert "walked across the ice" in english.hits[0].text
    with pytest.raises(SearchError, match="ISO 639"):
        searcher.search(query="x", languages=["German; DROP"])


@pytest.mark.parametrize("word", ["zugefrorenen", "Flüsse", "Leuchttürmen"])
def test_german_words_match_their_inflected_forms_in_text_search(archive, word):
    """German documents are full-text indexed with German stemming (text_de): inflected forms
    match; the English analyser on `text` finds none of these."""
    searcher = archive["searcher"]
    assert searcher._fts_columns() == ["text_en", "text_de"]
    hits = searcher.search(query=word, mode="text").hits
    assert [hit.text for hit in hits][:1] == [
        "Im Winter war der Fluss zugefroren, und wir gingen zum Leuchtturm."
    ]
    english_only = searcher.table.search(word, query_type="fts", fts_columns="text").to_list()
    assert english_only == []
    # English words still stem in English: "approving" finds "approved"
    assert searcher.search(query="approving", mode="text").hits


def test_temporal_words_become_a_visible_decade_filter(archive):
    results = archive["searcher"].search(query="tram line in the nineties", mode="text")
    assert results.decades == ("1990s",) and results.searched_text == "tram line"
    assert "the nineties" in results.decade_filter_source
    assert results.hits and {hit.decade for hit in results.hits} == {"1990s"}
    untouched = archive["searcher"].search(query="tram line in the nineties", temporal=False)
    assert untouched.decades is None


@pytest.mark.parametrize(
    ("query", "decades", "remaining"),
    [
        ("harbour interview in 1987", ("1980s",), "harbour interview"),
        ("news from the nineties", ("1990s",), "news"),
        ("the '80s tram", ("1980s",), "tram"),
        ("the 1960s reel", ("1960s",), "reel"),
        ("the eighties and the nineties", ("1980s", "1990s"), "and"),
        ("frame 1999", None, None),  # a bare number is not a date
        ("in 2035", None, None),  # no such partition
    ],
)
def test_temporal_parsing(query, decades, remaining):
    found = parse_temporal(query)
    assert (found and found.decades) == decades
    if found:
        assert found.remaining == remaining


def test_bad_requests_are_clear_errors(archive, tmp_path):
    searcher = archive["searcher"]
    with pytest.raises(TypeError):  # keyword-only parameters
        searcher.search("x")
    with pytest.raises(SearchError, match="unknown decade"):
        searcher.search(query="x", decades=["1985"])
    with pytest.raises(SearchError, match="mode"):
        searcher.search(query="x", mode="semantic")
    with pytest.raises(SearchError, match="no search_documents table"):
        Searcher(Warehouse(str(tmp_path))).search(query="x")
    other = Searcher(archive["wh"], clip=ClipSettings(model="ViT-B-32", pretrained="x"))
    with pytest.raises(SearchError, match="vectors were made by"):
        other.search(query="x", mode="vector")


def test_rrf_equals_lancedb_rrf_reranker():
    from lancedb.rerankers import RRFReranker

    vector = pa.table({"_rowid": [3, 1, 7, 2], "_distance": [0.1, 0.2, 0.3, 0.4]})
    fts = pa.table({"_rowid": [7, 5, 3], "_score": [9.0, 5.0, 1.0]})
    theirs = RRFReranker().rerank_hybrid("q", vector, fts)
    ours = reciprocal_rank_fusion(
        {"vector": [str(i) for i in vector["_rowid"].to_pylist()],
         "text": [str(i) for i in fts["_rowid"].to_pylist()]}
    )  # fmt: skip
    assert [int(i) for i, _, _ in ours] == theirs["_rowid"].to_pylist()
    np.testing.assert_allclose(
        [s for _, s, _ in ours], theirs["_relevance_score"].to_numpy(), rtol=1e-6
    )


def test_vector_index_once_enough_rows_and_dimension_guard(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(600, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [
        {
            "row_id": f"r{i}",
            "decade": "1980s",
            "media_id": "m",
            "model_id": "test-model",
            "kind": "speech",
            "uri": "file:///m.wav",
            "source_id": f"s{i}",
            "start_s": float(i),
            "end_s": float(i + 1),
            "time_s": float(i),
            "text": f"segment {i}",
            "vector": vectors[i].tolist(),
        }
        for i in range(600)
    ]
    for row in rows[::10]:  # text only (e.g. a changed text): never a vector hit
        row["vector"] = None
    wh = Warehouse(str(tmp_path))
    wh.replace(TABLE, rows, scope={"decade": "1980s"}, dim=16)
    small = ensure_indexes(wh.table(TABLE), IndexSettings(vector_min_rows=541))
    assert "vector" not in small
    exact = Searcher(wh, clip=CLIP)._vector(vectors[0], "vector", None, 600)
    assert len(exact) == 540 and "r0" not in {r["row_id"] for r in exact}
    built = ensure_indexes(wh.table(TABLE), IndexSettings(vector_min_rows=540))
    assert built["vector"] == "IvfHnswSq"
    searcher = Searcher(wh, clip=CLIP, refresh_s=0)
    found = searcher._vector(vectors[42], "vector", None, 3)
    assert found[0]["row_id"] == "r42" and found[0]["_similarity"] == pytest.approx(1.0, abs=1e-5)
    # rows committed after the index (another decade) are found before any optimize, and a
    # long-lived searcher sees them
    late = dict(rows[7], row_id="late", decade="1990s", source_id="late", text="a late commit")
    wh.replace(TABLE, [late], scope={"decade": "1990s"}, dim=16)
    found = searcher._vector(vectors[7], "vector", "decade = '1990s'", 3)
    assert [r["row_id"] for r in found] == ["late"]
    assert searcher.search(query="late commit", mode="text").hits[0].row_id == "late"
    with pytest.raises(VectorDimensionError, match="16-d vectors but these rows have 32-d"):
        wh.replace(TABLE, [], scope={"decade": "1990s"}, dim=32)
    assert len(wh.read(TABLE, {"decade": "1980s"})) == 600


def test_cli_prints_a_table_and_json(archive, monkeypatch, capsys):
    from archive_pipeline.search import cli

    monkeypatch.setenv("ARCHIVE_WAREHOUSE", archive["wh"].root)
    assert cli.main(["tram line", "--mode", "text", "--decade", "1990s"]) == 0
    out = capsys.readouterr().out
    assert 'text search for "tram line"' in out and "decade in 1990s (argument)" in out
    assert f"{NEWS}#t=" in out
    assert cli.main(["city centre", "--mode", "text", "--json", "--limit", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hits"][0]["uri"] == REEL and data["hits"][0]["deep_link"].startswith(REEL)
    with pytest.raises(SystemExit):
        cli.main(["x", "--mode", "semantic"])
    assert cli.main(["", "--mode", "text"]) == 2
    assert "empty query" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # neither a query nor --voice
        cli.main(["--mode", "text"])


def test_speech_documents_skip_empty_text():
    rows = [segment("m", "u", 0, 0, 1, "  ", "A"), segment("m", "u", 1, 1, 2, "words", "A")]
    assert [d["text"] for d in speech_documents(table("segments", rows))] == ["words"]


def test_cli_names_a_damaged_table_in_one_line(archive, tmp_path, monkeypatch, capsys):
    import shutil

    from archive_pipeline.search import cli

    root = tmp_path / "wh"
    shutil.copytree(archive["wh"].root, root)
    for data in (root / f"{TABLE}.lance" / "data").glob("*.lance"):
        with open(data, "r+b") as handle:  # every data file truncated: a lost write
            handle.truncate(data.stat().st_size // 3)
    monkeypatch.setenv("ARCHIVE_WAREHOUSE", str(root))
    capsys.readouterr()
    assert cli.main(["tram line", "--mode", "text"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{TABLE}'" in err[0]
    assert f"archive-pipeline repair --table {TABLE}" in err[0]
