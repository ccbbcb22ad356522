"""The search service (`archive-search serve`) through FastAPI's test client over a small
warehouse and inbox built here: every endpoint, bad input, Range requests, `/media` refusing
what is not catalogued; and the relevance rules of the shared search code.

Vectors here come from `ToyEmbedder`, a hashed bag of words made for these tests (not a model:
it only makes cosine similarity follow shared words, so the floor and fusion can be checked);
real-model relevance is measured in test_demo.py and benchmarks/retrieval_quality.py."""

import datetime as dt
import hashlib
import io
import json
import math
import os
import struct
import wave

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from archive_pipeline.core.ids import row_id
from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.search.documents import analysed_text
from archive_pipeline.search.indexes import TABLE, IndexSettings, ensure_indexes
from archive_pipeline.search.query import Searcher, TitleIndex
from archive_pipeline.search.service import create_app, parse_range
from archive_pipeline_tests.helpers import served_over_http

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DIM = 64
BASE = "http://127.0.0.1"  # a Host the service answers (ARCHIVE_SEARCH_ALLOWED_HOSTS)


class ToyEmbedder:
    """Test-only query embedder: a unit vector of hashed words (labelled, not a model)."""

    model_id = "toy/hashed-bag-of-words (tests only)"

    def embed(self, texts):
        out = np.zeros((len(texts), DIM), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.strip(".,?!").encode()).hexdigest(), 16) % DIM] += 1
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


def wav_bytes(seconds: float = 2.0, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (
            int(8000 * math.sin(2 * math.pi * 440 * t / rate)) for t in range(int(rate * seconds))
        )
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def jpeg(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), colour).save(buffer, "JPEG")
    return buffer.getvalue()


ITEMS = {  # media_id: (decade, store_key, kind, title)
    "harbour": ("1980s", "interviews/harbour_interview.wav", "audio", "Harbour interview"),
    "news": ("1990s", "tv/evening_news.mp4", "video", None),
    "escape": ("1990s", "escape.wav", "audio", "A link out of the store"),
    "gone": ("1990s", "gone.wav", "audio", "Deleted since"),
    "scan": ("1990s", "scans/pressemitteilung.tif", "image", "Pressemitteilung"),
    "gdansk": ("1980s", 'interviews/Gdańsk_Łódź_1974 "final".wav', "audio", None),
}
DOCS = [  # media_id, kind, start, end, time, speaker, name, text
    ("harbour", "speech", 0.0, 4.0, 0.0, "SPEAKER_00", "Interviewer",
     "Do you remember the winter when the river froze?"),
    ("harbour", "speech", 4.0, 9.0, 4.0, "SPEAKER_01", "Dock worker",
     "I remember it well. We walked across the ice to the old lighthouse."),
    ("news", "keyframe", 0.0, 3.0, 1.5, "SPEAKER_00", None, "TRAM LINE APPROVED"),
    ("news", "speech", 0.2, 2.8, 0.2, "SPEAKER_00", None,
     "The city council approved the new tram line today."),
    ("news", "speech", 3.1, 5.8, 3.1, "SPEAKER_00", None, "Okay."),
    ("harbour", "speech", 9.0, 12.0, 9.0, "SPEAKER_01", "Dock worker",
     "Later a tram ran along the quay every morning."),
    ("news", "speech", 6.0, 9.0, 6.0, "SPEAKER_01", None,
     "Die Mauer ist gefallen, sagte die Reporterin am Abend."),
    ("scan", "keyframe", 0.0, 0.0, 0.0, None, None,
     "Die neue Fähre nach Kladow fährt ab Montag jeden Morgen."),
]  # fmt: skip
GERMAN = {
    "Die Mauer ist gefallen, sagte die Reporterin am Abend.",
    "Die neue Fähre nach Kladow fährt ab Montag jeden Morgen.",
}
SCAN_REGION = [0.1, 0.08, 0.9, 0.3]  # the passage on the scan's page 1
YEARS = {"harbour": 1984, "news": 1996}


def build_archive(root, *, refresh_s: float = 10.0) -> dict:
    """A warehouse (catalogue, keyframes, stage status, failures, search_documents) and an
    inbox under `root`; the app over them."""
    inbox = root / "inbox"
    (inbox / "interviews").mkdir(parents=True)
    (inbox / "tv").mkdir()
    audio = wav_bytes(12.0)  # long enough to seek to every moment
    (inbox / "interviews/harbour_interview.wav").write_bytes(audio)
    (inbox / ITEMS["gdansk"][1]).write_bytes(audio)
    (inbox / "tv/evening_news.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    (inbox / "scans").mkdir()
    page = Image.new("L", (600, 850), 255)
    for line in range(4):  # dark bars where the passage's lines are
        page.paste(0, (70, 80 + line * 40, 530, 100 + line * 40))
    page.save(inbox / "scans/pressemitteilung.tif")
    secret = root / "outside.wav"
    secret.write_bytes(b"not part of the archive")
    os.symlink(secret, inbox / "escape.wav")
    wh = Warehouse(str(root / "warehouse"))
    for decade in ("1980s", "1990s"):
        in_decade = {m: v for m, v in ITEMS.items() if v[0] == decade}
        wh.replace(
            "media_catalog",
            [
                {
                    "row_id": row_id("media_catalog", m),
                    "decade": decade,
                    "media_id": m,
                    "uri": (inbox / key).as_uri(),
                    "store_key": key,
                    "kind": kind,
                    "title": title,
                    "year": YEARS.get(m),
                    "sha256": hashlib.sha256(m.encode()).hexdigest(),
                    "created_at": NOW,
                }
                for m, (_, key, kind, title) in in_decade.items()
            ],
            scope={"decade": decade},
        )
        for stage in ("transcripts", "diarised_segments"):
            wh.replace(
                "stage_items",
                [
                    {
                        "row_id": row_id("stage_items", m, stage),
                        "decade": decade,
                        "media_id": m,
                        "stage": stage,
                        "uri": (inbox / ITEMS[m][1]).as_uri(),
                        "status": "ok",
                        "n_rows": 2,
                    }
                    for m in in_decade
                ],
                scope={"decade": decade, "stage": stage},
            )
    wh.replace(
        "failures",
        [
            {
                "row_id": row_id("failures", "news", "shots"),
                "decade": "1990s",
                "media_id": "news",
                "stage": "shots",
                "uri": (inbox / "tv/evening_news.mp4").as_uri(),
                "store_key": "tv/evening_news.mp4",
                "error_class": "DecodeError",
                "message": "moov atom not found",
            }
        ],
        scope={"decade": "1990s", "stage": "shots"},
    )
    keyframe_id = row_id("keyframes", "news", "0")
    wh.replace(
        "keyframes",
        [
            {
                "row_id": keyframe_id,
                "decade": "1990s",
                "media_id": "news",
                "uri": (inbox / "tv/evening_news.mp4").as_uri(),
                "keyframe_index": 0,
                "shot_index": 0,
                "frame_index": 37,
                "time_s": 1.5,
                "phash": "0" * 16,
                "thumbnail": jpeg((200, 30, 30)),
                "thumbnail_format": "jpeg",
                "thumbnail_width": 32,
                "thumbnail_height": 18,
                "replaces": [],
            }
        ],
        scope={"decade": "1990s"},
    )
    embedder = ToyEmbedder()
    for decade in ("1980s", "1990s"):
        rows = []
        for i, (m, kind, start, end, time_s, speaker, name, text) in enumerate(DOCS):
            if ITEMS[m][0] != decade:
                continue
            rows.append(
                {
                    "row_id": row_id("search_documents", str(i)),
                    "decade": decade,
                    "media_id": m,
                    "model_id": embedder.model_id,
                    "kind": kind,
                    "uri": (inbox / ITEMS[m][1]).as_uri(),
                    "title": ITEMS[m][3],
                    "source_id": str(i),
                    "start_s": start,
                    "end_s": end,
                    "time_s": time_s,
                    "speaker": speaker,
                    "speaker_name": name,
                    "text": text,
                    "language": "de" if text in GERMAN else "en",
                    "keyframe_id": keyframe_id if m == "news" else None,
                    "page": 1 if m == "scan" else None,
                    "region": SCAN_REGION if m == "scan" else None,
                    "vector": embedder.embed([text])[0].tolist(),
                    **analysed_text(text, "de" if text in GERMAN else "en"),
                }
            )
        wh.replace(TABLE, rows, scope={"decade": decade}, dim=DIM)
    ensure_indexes(wh.table(TABLE), IndexSettings())
    searcher = Searcher(wh, embedder=embedder, min_similarity=0.4, refresh_s=refresh_s)
    client = TestClient(create_app(searcher, LocalStore(str(inbox)), warm=False), base_url=BASE)
    return {"client": client, "audio": audio, "keyframe_id": keyframe_id, "inbox": inbox, "wh": wh}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app over `build_archive`."""
    return build_archive(tmp_path_factory.mktemp("service"))


def moments(data: dict) -> list[dict]:
    """Every moment of a response, group by group, with its group's media_id and decade."""
    return [
        {**m, "media_id": g["media_id"], "decade": g["decade"]}
        for g in data["groups"]
        for m in g["moments"]
    ]


def test_search_returns_items_with_moments_links_scores_and_filters(served):
    client = served["client"]
    response = client.get("/search", params={"q": "tram line", "mode": "text", "limit": 5})
    assert response.status_code == 200
    data = response.json()
    group = data["groups"][0]
    first = group["moments"][0]
    assert group["media_id"] == "news" and group["media_kind"] == "video"
    assert group["file"] == "tv/evening_news.mp4" and group["decade"] == "1990s"
    assert group["media_url"] == "/media/news" and first["player_url"].startswith("/media/news#t=")
    assert first["thumbnail_url"] == f"/thumbnails/{served['keyframe_id']}"
    assert data["score_meaning"] == "bm25_relative" and first["score"] == group["score"] == 1.0
    assert all(0 < m["score"] <= 1 for m in moments(data))
    assert first["raw_score"] > 0
    # one group per item, its moments best first; the totals and facets count items
    assert len({g["media_id"] for g in data["groups"]}) == len(data["groups"]) == data["total"]
    assert data["total_relation"] == "eq"
    assert {f["value"]: f["count"] for f in data["facets"]["decade"]} == {"1990s": 1, "1980s": 1}
    # no server paths or internal filters in the answer
    assert "file://" not in response.text and "where" not in data
    assert str(served["inbox"]) not in response.text
    decade = client.get("/search", params={"q": "remember the winter in the eighties"}).json()
    assert decade["filters"]["decades"] == ["1980s"]
    assert "eighties" in decade["filters"]["decade_filter_source"]
    assert {m["decade"] for m in moments(decade)} == {"1980s"}


def test_hybrid_leaves_out_vector_hits_below_the_floor_and_says_so(served):
    data = served["client"].get("/search", params={"q": "approved tram", "limit": 10}).json()
    assert data["score_meaning"] == "rrf_normalised" and data["min_similarity"] == 0.4
    texts = [m["text"] for m in moments(data)]
    assert "Okay." not in texts and "I remember it well" not in " ".join(texts)
    assert data["below_floor"] > 0 and any("relevance floor" in n for n in data["notes"])
    assert all(m["score"] <= 1.0 for m in moments(data))
    # a note that keyframe images are not searched only when pictures were asked for
    assert not any("no image-text model" in n for n in data["notes"])
    pictures = {"q": "approved tram", "kind": "keyframe"}
    assert any(
        "no image-text model" in n
        for n in served["client"].get("/search", params=pictures).json()["notes"]
    )


def test_titles_and_file_names_are_searchable(served):
    by_title = served["client"].get("/search", params={"q": "harbour", "mode": "vector"}).json()
    assert moments(by_title)[0]["media_id"] == "harbour"
    assert moments(by_title)[0]["matched_by"] == {"title": 1}
    assert moments(by_title)[0]["time_s"] == 0.0  # a title match plays from the start
    by_file = served["client"].get("/search", params={"q": "evening_news", "mode": "text"}).json()
    assert moments(by_file)[0]["media_id"] == "news"
    assert "title" in moments(by_file)[0]["matched_by"]


def test_title_index_matching():
    index = TitleIndex.build(
        [
            {
                "media_id": "a",
                "decade": "2000s",
                "title": None,
                "store_key": "v/big_buck_bunny.mp4",
            },
            {
                "media_id": "b",
                "decade": "1960s",
                "title": "Kino Nord: opening",
                "store_key": "k.mp4",
            },
            {"media_id": "c", "decade": "1970s", "title": "Die neue Fähre", "store_key": "s.tif"},
        ]
    )
    assert index.match("bunny") == ["a"]
    assert index.match("bunn") == ["a"]  # prefix of 4+ letters
    assert index.match("Kino Nord presents") == ["b"]  # 2 of 3 words
    assert index.match("the opening of the harbour tunnel") == []  # 1 of 3
    assert index.match("fähre") == ["c"] and index.match("FÄHRE") == ["c"]
    assert index.match("kino", decades=("1990s",)) == []
    assert index.match("the of") == []


def test_unknown_speaker_is_answered_with_the_known_names(served):
    data = (
        served["client"]
        .get("/search", params={"q": "ice", "speaker": "Mayor Schulz", "mode": "text"})
        .json()
    )
    assert data["groups"] == [] and data["known_speakers"] == ["Dock worker", "Interviewer"]
    assert any("Dock worker" in n for n in data["notes"])
    found = (
        served["client"]
        .get("/search", params={"q": "ice", "speaker": "dock worker", "mode": "text"})
        .json()
    )
    assert moments(found)[0]["speaker"] == "Dock worker" and found["known_speakers"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": ""}, "q"),
        ({}, "q: Field required"),
        ({"q": "x" * 1001}, "q"),
        ({"q": "x", "mode": "semantic"}, "mode must be one of"),
        ({"q": "x", "limit": 0}, "limit"),
        ({"q": "x", "limit": 51}, "limit"),
        ({"q": "x", "offset": 95, "limit": 10}, "offset + limit"),
        ({"q": "x", "page": 2}, "unknown parameter(s) page"),
        ({"q": "x", "sort": "newest"}, "sort must be one of"),
        ({"q": "*"}, "no words to find"),
        ({"q": "-tram"}, "no words to find"),
        ({"q": "x", "media": "../etc"}, "media takes media ids"),
        ({"q": "x", "limit": "ten"}, "limit"),
        ({"q": "x", "decade": "1850s"}, "unknown decade"),
        ({"q": "x", "kind": "poster"}, "unknown kind"),
        ({"q": "x", "language": "German"}, "ISO 639"),
    ],
)
def test_bad_parameters_are_400_with_a_message(served, params, message):
    response = served["client"].get("/search", params=params)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error"} and message in body["error"]
    assert "Traceback" not in response.text


def test_thumbnails_have_type_and_caching_headers(served):
    client = served["client"]
    response = client.get(f"/thumbnails/{served['keyframe_id']}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (32, 18)
    assert "max-age" in response.headers["cache-control"]
    etag = response.headers["etag"]
    again = client.get(f"/thumbnails/{served['keyframe_id']}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    assert client.get("/thumbnails/no-such-keyframe").status_code == 404
    assert client.get("/thumbnails/..%2F..%2Fetc").status_code == 404


def test_media_streams_whole_and_ranged(served):
    client, audio = served["client"], served["audio"]
    whole = client.get("/media/harbour")
    assert whole.status_code == 200 and whole.content == audio
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get("/media/harbour", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == audio[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(audio)}"
    assert part.headers["content-length"] == "1000"
    tail = client.get("/media/harbour", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == audio[-10:]
    open_ended = client.get("/media/harbour", headers={"Range": f"bytes={len(audio) - 5}-"})
    assert open_ended.content == audio[-5:]
    clipped = client.get("/media/harbour", headers={"Range": f"bytes=10-{len(audio) + 99}"})
    assert clipped.status_code == 206 and clipped.content == audio[10:]
    outside = client.get("/media/harbour", headers={"Range": f"bytes={len(audio)}-"})
    assert (
        outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(audio)}"
    )
    head = client.head("/media/harbour")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(audio))


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/media/not-catalogued", 404),
        ("/media/..%2F..%2Fetc%2Fpasswd", 404),
        ("/media/%2Fetc%2Fpasswd", 404),
        ("/media/escape", 403),  # catalogued, but a link to a file outside the store
        ("/media/gone", 404),  # catalogued, file deleted since
        ("/media/interviews", 404),  # a folder of the inbox is not an item
    ],
)
def test_media_refuses_anything_not_catalogued_in_the_store(served, path, status):
    response = served["client"].get(path)
    assert response.status_code == status, response.text
    assert "not part of the archive" not in response.text and "error" in response.json()


def test_items_show_catalogue_stage_status_and_failures(served):
    client = served["client"]
    data = client.get("/items/news").json()
    assert data["catalog"]["store_key"] == "tv/evening_news.mp4"
    assert {s["stage"] for s in data["stages"]} == {"transcripts", "diarised_segments"}
    assert data["failures"][0]["error_class"] == "DecodeError"
    assert data["media_url"] == "/media/news"
    json.dumps(data)  # JSON-safe (timestamps as text)
    assert client.get("/items/unknown").status_code == 404


def test_health_options_openapi_and_page(served):
    client = served["client"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["search_documents"]["rows"] == len(DOCS)
    options = client.get("/options").json()
    assert options["decades"] == ["1980s", "1990s"]  # the decades with documents, no others
    assert options["speakers"] == ["Dock worker", "Interviewer"] and options["languages"] == [
        "de",
        "en",
    ]
    assert '"a phrase"' in options["syntax"]
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert {
        "/search",
        "/thumbnails/{keyframe_id}",
        "/media/{media_id}",
        "/items/{media_id}",
        "/pages/{media_id}/{page}",
    } <= set(paths)
    # the statuses the service answers, typed; never the 422 it does not send
    search = paths["/search"]["get"]["responses"]
    assert {"200", "400", "503"} <= set(search) and "422" not in json.dumps(document)
    assert search["200"]["content"]["application/json"]["schema"]["$ref"].endswith("SearchResponse")
    assert {"404", "416"} <= set(paths["/media/{media_id}"]["get"]["responses"])
    page = client.get("/")
    assert page.status_code == 200 and 'id="q"' in page.text and "/search?" in page.text


def test_health_is_503_without_an_index(tmp_path):
    searcher = Searcher(Warehouse(str(tmp_path / "empty"), read_only=True), embedder=ToyEmbedder())
    client = TestClient(create_app(searcher, LocalStore(str(tmp_path)), warm=False), base_url=BASE)
    response = client.get("/healthz")
    assert response.status_code == 503 and "error" in response.json()
    # a server state, not the client's error: every endpoint that needs the index says 503
    for path in ("/search?q=x", "/options", "/items/x", "/media/x", "/thumbnails/x"):
        answer = client.get(path)
        assert answer.status_code == 503, (path, answer.text)
        assert "search_documents" in answer.json()["error"] or "warehouse" in answer.json()["error"]


def test_internal_errors_show_no_trace(served, monkeypatch):
    client = TestClient(served["client"].app, raise_server_exceptions=False, base_url=BASE)
    from archive_pipeline.search import query

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret detail /etc/shadow")

    monkeypatch.setattr(query.Searcher, "known_speakers", broken)
    response = client.get("/options")
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole object
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=9-3", "bytes=-0", "items=0-1", "bytes=-"])
def test_parse_range_unsatisfiable(header):
    from archive_pipeline.search.service import Unsatisfiable

    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


def test_concurrent_queries_are_embedded_in_batches():
    import threading
    import time

    from archive_pipeline.search.query import QueryBatcher

    def slow(texts):  # a model call with a fixed cost
        time.sleep(0.2)
        return [np.array([float(len(t))]) for t in texts]

    batcher = QueryBatcher(slow)
    results: dict[int, float] = {}

    def ask(i: int) -> None:
        results[i] = float(batcher.embed("x" * i)[0])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(1, 17)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: float(i) for i in range(1, 17)}  # each caller its own vector
    assert batcher.calls < 16 and batcher.largest > 1
    assert float(batcher.embed("abc")[0]) == 3.0  # alone: no waiting for others


def test_a_failing_batch_fails_each_of_its_callers():
    from archive_pipeline.search.query import QueryBatcher

    def broken(texts):
        raise RuntimeError("model gone")

    batcher = QueryBatcher(broken)
    with pytest.raises(RuntimeError, match="model gone"):
        batcher.embed("a")
    with pytest.raises(RuntimeError, match="model gone"):  # and the batcher is usable again
        batcher.embed("b")


def test_a_running_service_sees_new_commits(tmp_path):
    """A decade committed while the service runs is searched (tables re-read at the refresh
    interval, here 0 s), its new item's title too."""
    archive = build_archive(tmp_path, refresh_s=0.0)
    client, wh = archive["client"], archive["wh"]
    assert client.get("/search", params={"q": "ferry", "mode": "text"}).json()["groups"] == []
    before = client.get("/healthz").json()["search_documents"]["version"]
    inbox = archive["inbox"]
    (inbox / "ferry_1978.wav").write_bytes(wav_bytes(0.5))
    wh.replace(
        "media_catalog",
        [
            {
                "row_id": row_id("media_catalog", "ferry"),
                "decade": "1970s",
                "media_id": "ferry",
                "uri": (inbox / "ferry_1978.wav").as_uri(),
                "store_key": "ferry_1978.wav",
                "kind": "audio",
                "title": "Spandau crossing",
            }
        ],
        scope={"decade": "1970s"},
    )
    text = "The new ferry leaves every hour."
    wh.replace(
        TABLE,
        [
            {
                "row_id": row_id("search_documents", "ferry"),
                "decade": "1970s",
                "media_id": "ferry",
                "model_id": ToyEmbedder.model_id,
                "kind": "speech",
                "uri": (inbox / "ferry_1978.wav").as_uri(),
                "title": "Spandau crossing",
                "source_id": "ferry",
                "start_s": 0.0,
                "end_s": 0.5,
                "time_s": 0.0,
                "text": text,
                "vector": ToyEmbedder().embed([text])[0].tolist(),
                **analysed_text(text, "en"),
            }
        ],
        scope={"decade": "1970s"},
        dim=DIM,
    )
    assert client.get("/healthz").json()["search_documents"]["version"] > before
    found = moments(client.get("/search", params={"q": "ferry", "mode": "text"}).json())
    assert found and found[0]["media_id"] == "ferry"
    by_title = moments(client.get("/search", params={"q": "Spandau", "mode": "text"}).json())
    assert by_title and by_title[0]["matched_by"] == {"title": 1}
    assert client.get("/media/ferry").status_code == 200


@pytest.mark.s3
def test_media_from_s3_with_ranges(s3_endpoint, served):
    """The same service over an S3 inbox: ranged GETs against the object store."""
    import boto3

    from archive_pipeline.core.s3_store import S3Store

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = "service-media"
    client.create_bucket(Bucket=bucket)
    audio = served["audio"]
    client.put_object(Bucket=bucket, Key="inbox/interviews/harbour_interview.wav", Body=audio)
    store = S3Store(bucket=bucket, prefix="inbox", endpoint_url=s3_endpoint)
    assert b"".join(store.read_range("interviews/harbour_interview.wav", 10, 19)) == audio[10:20]
    app = create_app(Searcher(served["wh"], embedder=ToyEmbedder()), store, warm=False)
    s3 = TestClient(app, base_url=BASE)
    part = s3.get("/media/harbour", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == audio[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(audio)}"
    assert s3.get("/media/harbour").content == audio
    assert s3.get("/media/news").status_code == 404  # catalogued, not in this bucket


def test_a_word_in_many_titles_reads_a_bounded_number_of_items(tmp_path):
    """'interview' in 60 file names: the title list brings at most the fusion's candidates."""
    wh = Warehouse(str(tmp_path / "wh"))
    embedder = ToyEmbedder()
    items = [f"m{i:02d}" for i in range(60)]
    wh.replace(
        "media_catalog",
        [
            {
                "row_id": row_id("media_catalog", m),
                "decade": "1980s",
                "media_id": m,
                "uri": f"file:///inbox/interview_{m}.wav",
                "store_key": f"interview_{m}.wav",
                "kind": "audio",
            }
            for m in items
        ],
        scope={"decade": "1980s"},
    )
    text = "Good morning."
    wh.replace(
        TABLE,
        [
            {
                "row_id": row_id("search_documents", m),
                "decade": "1980s",
                "media_id": m,
                "model_id": embedder.model_id,
                "kind": "speech",
                "uri": f"file:///inbox/interview_{m}.wav",
                "source_id": m,
                "start_s": 0.0,
                "end_s": 1.0,
                "time_s": 0.0,
                "text": text,
                "vector": embedder.embed([text])[0].tolist(),
                **analysed_text(text, "en"),
            }
            for m in items
        ],
        scope={"decade": "1980s"},
        dim=DIM,
    )
    searcher = Searcher(wh, embedder=embedder)
    assert len(searcher._title_matches("interview", None, None, 40)) == 40
    results = searcher.search(query="interview", mode="text", limit=5)
    assert len(results.hits) == 5 and all(h.matched_by == {"title": h.rank} for h in results.hits)


def texts_of(client, **params) -> list[str]:
    """The texts of every moment found (all moments of every item)."""
    data = client.get("/search", params={"mode": "text", "limit": 50, **params}).json()
    found = []
    for group in data["groups"]:
        every = client.get(
            "/search", params={"mode": "text", **params, "media": group["media_id"]}
        ).json()
        found += [m["text"] for m in moments(every)]
    return found


def test_query_syntax_phrases_prefixes_exclusions_and_or(served):
    client = served["client"]
    # a phrase: its words in this order (the full-text index has positions)
    assert set(texts_of(client, q='"tram line"')) == {
        "TRAM LINE APPROVED",
        "The city council approved the new tram line today.",
    }
    assert texts_of(client, q='"line tram"') == []
    # a prefix: the archive's words beginning so
    assert "Later a tram ran along the quay every morning." in texts_of(client, q="tra*")
    assert "Do you remember the winter when the river froze?" in texts_of(client, q="rive*")
    # an exclusion leaves out what holds it, whichever retriever found it
    for mode in ("text", "hybrid"):
        data = client.get("/search", params={"q": "tram -approved", "mode": mode}).json()
        found = [m["text"] for m in moments(data)]
        assert "Later a tram ran along the quay every morning." in found, mode
        assert not any("approved" in t.lower() for t in found), (mode, found)
    # OR: one of the phrases must match
    either = set(texts_of(client, q='"river froze" OR "tram line"'))
    assert "Do you remember the winter when the river froze?" in either
    assert "Later a tram ran along the quay every morning." not in either
    # a stop word of the query's language does not match the other language's text
    assert texts_of(client, q="die Mauer") == [
        "Die Mauer ist gefallen, sagte die Reporterin am Abend."
    ]
    assert not any("Mauer" in t for t in texts_of(client, q="the tram"))


def test_items_page_with_totals_and_sort_by_date(served):
    client = served["client"]
    first = client.get("/search", params={"q": "tram", "mode": "text", "limit": 1}).json()
    second = client.get(
        "/search", params={"q": "tram", "mode": "text", "limit": 1, "offset": 1}
    ).json()
    assert first["total"] == second["total"] == 2 and first["total_relation"] == "eq"
    assert first["groups"][0]["media_id"] != second["groups"][0]["media_id"]
    oldest = client.get("/search", params={"q": "tram", "mode": "text", "sort": "date"}).json()
    newest = client.get("/search", params={"q": "tram", "mode": "text", "sort": "-date"}).json()
    assert [g["date"] for g in oldest["groups"]] == ["1984-01-01", "1996-01-01"]
    assert [g["media_id"] for g in newest["groups"]] == ["news", "harbour"]
    # an item's best moments, the others counted and listed on asking
    news = client.get("/search", params={"q": "tram OR approved OR okay", "mode": "text"}).json()
    group = next(g for g in news["groups"] if g["media_id"] == "news")
    assert len(group["moments"]) <= 3
    every = client.get(
        "/search", params={"q": "tram OR approved", "mode": "text", "media": "news"}
    ).json()
    assert [g["media_id"] for g in every["groups"]] == ["news"]


def test_facets_count_items_over_the_query(served):
    data = served["client"].get("/search", params={"q": "tram", "mode": "text"}).json()
    facets = {
        name: {f["value"]: f["count"] for f in values} for name, values in data["facets"].items()
    }
    assert facets["decade"] == {"1980s": 1, "1990s": 1}
    assert facets["speaker"]["Dock worker"] == 1 and facets["language"] == {"en": 2}
    narrowed = (
        served["client"]
        .get("/search", params={"q": "tram", "mode": "text", "decade": "1980s"})
        .json()
    )
    assert narrowed["total"] == 1 and narrowed["groups"][0]["media_id"] == "harbour"


def test_highlights_are_whole_words_and_no_stop_words(served):
    data = (
        served["client"]
        .get("/search", params={"q": "the approved tram lines", "mode": "text"})
        .json()
    )
    for moment in moments(data):
        marked = [moment["snippet"][a:b] for a, b in moment["highlights"]]
        for word in marked:
            assert word.lower() in {"approved", "tram", "line"}, marked  # lines -> line (stem)
        if moment["text"].startswith("The city council"):
            assert marked == ["approved", "tram", "line"]


def test_fragments_do_not_outrank_sentences(served):
    data = served["client"].get("/search", params={"q": "okay today", "mode": "text"}).json()
    texts = [m["text"] for m in moments(data)]
    assert texts.index("The city council approved the new tram line today.") < texts.index("Okay.")


def test_http_details_etag_head_host_names_and_ranges(served):
    client = served["client"]
    thumb = client.get(f"/thumbnails/{served['keyframe_id']}")
    assert (
        client.get(
            f"/thumbnails/{served['keyframe_id']}", headers={"If-None-Match": "*"}
        ).status_code
        == 304
    )
    listed = f'"nope", W/{thumb.headers["etag"]}'
    assert (
        client.get(
            f"/thumbnails/{served['keyframe_id']}", headers={"If-None-Match": listed}
        ).status_code
        == 304
    )
    head = client.head(f"/thumbnails/{served['keyframe_id']}")
    assert head.status_code == 200 and head.headers["content-type"] == "image/jpeg"
    assert client.head("/thumbnails/none").status_code == 404
    # a Range number longer than any file: 416, not an error of the service
    huge = client.get("/media/harbour", headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert huge.status_code == 416 and huge.headers["content-range"].startswith("bytes */")
    # the Host header: a name the service is not served under is refused (DNS rebinding)
    other = TestClient(client.app, base_url="http://attacker.example")
    refused = other.get("/search", params={"q": "tram"})
    assert refused.status_code == 400 and "Host" in refused.json()["error"]
    assert (
        TestClient(client.app, base_url="http://localhost:8765").get("/healthz").status_code == 200
    )
    assert TestClient(client.app, base_url="http://[::1]:8765").get("/healthz").status_code == 200


def test_file_names_outside_latin1_are_sent_with_rfc5987(served):
    from archive_pipeline.search.service import content_disposition

    response = served["client"].get("/media/gdansk", headers={"Range": "bytes=0-3"})
    assert response.status_code == 206 and response.content == served["audio"][:4]
    assert (
        "filename*=UTF-8''Gda%C5%84sk_%C5%81%C3%B3d%C5%BA_1974%20%22final%22.wav"
        in (response.headers["content-disposition"])
    )

    header = content_disposition('Gdańsk_Łódź_1974 "final".flac')
    header.encode("latin-1")  # a valid header value
    assert "filename*=UTF-8''Gda%C5%84sk_%C5%81%C3%B3d%C5%BA_1974%20%22final%22.flac" in header
    assert 'filename="Gdansk_odz_1974 _final_.flac"' in header


def test_no_5xx_and_no_dropped_connection_for_any_client_input(served):
    """Fuzz every endpoint over a real HTTP server: random and hostile parameters, headers,
    ranges and names on one keep-alive connection; nothing answers 5xx and the connection
    serves the next request after each."""
    import http.client
    import random
    import urllib.parse

    rng = random.Random(29)
    hostile = [
        "", "*", "-", '"', '""', '"tram', "tram*", "-tram", "OR", "OR OR", "a OR", "\x00",
        "' OR 1=1 --", "%", "%00", "../../etc/passwd", "ẞ" * 300, "😀", "\u202e", "x" * 1000,
        "tram" + " OR tram" * 200, "-" * 50, "*" * 50, "\\", "%s%n", "[]", "{}",
        "decade:1980s", "1e309", "NaN", "-1",
    ]  # fmt: skip
    alphabet = 'ab "*-_%/\\\x00é€😀<>&;:=,.OR'

    def noise() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))

    requests = []
    names = ["q", "mode", "decade", "kind", "speaker", "language", "media", "sort", "offset",
             "limit", "dates", "page", "original"]  # fmt: skip
    for _ in range(220):
        params = [
            (rng.choice(names), rng.choice([*hostile, noise()])) for _ in range(rng.randint(0, 4))
        ]
        if rng.random() < 0.8:
            params.append(("q", rng.choice([*hostile, noise(), "tram", "river"])))
        path = rng.choice(["/search", "/options", "/healthz", "/items/", "/media/", "/thumbnails/",
                           "/pages/", "/pages/scan/", "/"])  # fmt: skip
        if path.endswith("/") and path != "/":
            names = [*hostile, noise(), "harbour", "news", "scan", "gdansk", "1"]
            path += urllib.parse.quote(rng.choice(names), safe="")
        headers = {}
        if rng.random() < 0.3:
            headers["Range"] = rng.choice(
                [
                    "bytes=" + "9" * 4400 + "-",
                    "bytes=-0",
                    "bytes=5-1",
                    "bytes=x",
                    "bytes=0-,1-",
                    "bytes=-" + "1" * 30,
                    "items=0-1",
                    "bytes=0-99999999999999999999",
                ]
            )
        if rng.random() < 0.2:
            headers["If-None-Match"] = rng.choice(["*", '"x"', "W/", ",,,", "\u00ff"])
        method = "HEAD" if rng.random() < 0.1 else "GET"
        requests.append((method, f"{path}?{urllib.parse.urlencode(params)}", headers))
    requests += [
        ("GET", "/media/harbour", {"Range": "bytes=" + "1" * 4301 + "-2"}),
        ("GET", "/search?q=%22tram%22", {}),
        ("POST", "/search?q=tram", {}),
        ("GET", "/media/news", {"If-None-Match": "*"}),
        ("GET", "/search?q=tram&offset=10", {}),
        ("GET", "/search?q=tram&page=2", {}),
    ]
    with served_over_http(served["client"].app) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for method, path, headers in requests:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            assert response.status < 500, (method, path, headers, response.status, body[:300])
            if response.status >= 400 and method != "HEAD":
                assert "error" in json.loads(body), (path, body[:200])
            # the same connection goes on
            connection.request("GET", "/healthz")
            follow = connection.getresponse()
            follow.read()
            assert follow.status == 200, (method, path, headers)
        connection.close()


def test_a_failing_request_keeps_the_connection(served, monkeypatch):
    """An internal error is a JSON 500 and the keep-alive connection serves the next request."""
    import http.client

    from archive_pipeline.search.query import Searcher as SearcherClass

    def broken(self, **kwargs):
        raise RuntimeError("/secret/path/inside failed")

    monkeypatch.setattr(SearcherClass, "search", broken)
    with served_over_http(served["client"].app, log_level="critical") as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/search?q=tram")
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 500 and "/secret" not in body and "error" in json.loads(body)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        connection.close()


@pytest.mark.slow
def test_the_service_benchmark_runs_in_its_quick_mode():
    """benchmarks/search_service.py --quick (2,000 rows, 1 and 4 clients): every request
    answered 200 and its closing JSON line has the figures (the benchmark does not rot)."""
    import subprocess
    import sys

    from archive_pipeline_tests.helpers import REPO

    out = subprocess.run(
        [sys.executable, "benchmarks/search_service.py", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["synthetic"]["rows"] == 2000
    for mode in ("text", "vector", "hybrid"):
        assert figures["synthetic"][mode]["clients_4"]["qps"] > 0
    assert figures["query_encoder"]["searcher_1_thread"]["p50_ms"] > 0
