"""OCR (frame_text) with the default backend on real media: CER, counter frames, German,
Fraktur (the real 1784 page and generated pages)."""

import csv
import re
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from archive_pipeline.config.models import ModelUnavailableError
from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.core.text import normalise_print
from archive_pipeline.core.video import frames_at
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.resources import VisionModels
from archive_pipeline.defs.vision.assets import frame_text, shots_and_keyframes
from archive_pipeline.quality import character_error_rate, long_s_words
from archive_pipeline.quality.generated import fraktur_font_dir, printed_pages
from archive_pipeline.stages.base import CatalogItem
from archive_pipeline.stages.ocr import (
    FrameText,
    FrameTexts,
    FrameTextStage,
    KeyframeRef,
    OcrItem,
    OcrSettings,
    TextLine,
    frame_text_rows,
    is_historic_print,
    line_languages,
    reading_order,
)
from archive_pipeline_tests import helpers
from archive_pipeline_tests.helpers import local_resources

pytestmark = pytest.mark.slow
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def ocr():
    stage = FrameTextStage(LocalStore("."))
    stage.setup()
    return stage


def page_text(lines):
    return "\n".join(line.text for line in lines)


def test_phototest_character_error_rate(ocr, shared_media):
    image = np.asarray(Image.open(shared_media / "ocr/phototest.tif").convert("RGB"))
    lines = ocr.read(image)
    cer = character_error_rate((shared_media / "ocr/phototest.txt").read_text(), page_text(lines))
    print(f"phototest CER {cer:.4f} ({ocr.model_id})")
    assert cer <= 0.10
    assert all(0.5 <= line.confidence <= 1 and len(line.box) == 8 for line in lines)


def test_counter_frame_numbers(ocr, shared_media):
    """A third of the 30 ground-truth frames (every third); benchmarks/vision_quality.py
    measures all of them."""
    path = shared_media / "video/counter.mp4"
    expected = {}
    with open(shared_media / "video/counter.expected_text.csv") as handle:
        for row in csv.DictReader(handle):
            if int(row["frame_index_0based"]) % 3 == 0:
                expected[int(row["frame_index_0based"])] = row["expected_text"]
    assert len(expected) == 10
    frames = dict(frames_at(path, [index / 10 for index in expected]))
    correct = 0
    for index, text in expected.items():
        read = " ".join(line.text for line in ocr.read(frames[index / 10]))
        number = re.search(r"Frame\s*=\s*(\d+)", read)
        correct += bool(number) and number.group(1) == re.search(r"= (\d+)", text).group(1)
    print(f"counter.mp4: frame number read on {correct}/{len(expected)} frames")
    assert correct / len(expected) >= 0.9


def test_german_umlauts_and_eszett(ocr):
    text = ["Größe der Bürgerstraße", "Äpfel über Öl für 18 Mark"]
    image = Image.new("RGB", (900, 220), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(text):
        draw.text((30, 40 + 90 * i), line, fill="black", font=ImageFont.truetype(FONT, 40))
    german = FrameTextStage(LocalStore("."), settings=OcrSettings(language="de"))
    german.setup()
    cer = character_error_rate("\n".join(text), page_text(german.read(np.asarray(image))))
    assert cer <= 0.05, cer


def test_a_language_the_packaged_models_lack_names_the_setting():
    stage = FrameTextStage(LocalStore("."), settings=OcrSettings(language="ar"))
    with pytest.raises(ModelUnavailableError, match="ARCHIVE_OCR_LANGUAGE"):
        stage.setup()


def test_paddle_backend_without_its_extra_names_the_extra():
    pytest.importorskip("rapidocr")
    try:
        import paddleocr  # noqa: F401

        pytest.skip("paddleocr installed: covered by the paddle lane")
    except ImportError:
        pass
    stage = FrameTextStage(LocalStore("."), settings=OcrSettings(backend="paddleocr"))
    with pytest.raises(ModelUnavailableError, match="paddle"):
        stage.setup()


def test_reading_order_rows_then_columns():
    def line(text, x, y):
        return TextLine(text, 1.0, (x, y, x + 50, y, x + 50, y + 20, x, y + 20))

    lines = [line("d", 0, 100), line("b", 200, 3), line("a", 0, 0), line("c", 400, 8)]
    assert [x.text for x in reading_order(lines)] == ["a", "b", "c", "d"]


def test_frame_text_asset_reads_each_keyframe(shared_media, tmp_path):
    inbox = tmp_path / "inbox" / "1990s"
    inbox.mkdir(parents=True)
    shutil.copyfile(shared_media / "video/counter.mp4", inbox / "counter.mp4")
    resources = local_resources(
        tmp_path / "inbox",
        tmp_path / "wh",
        vision_models=VisionModels(keyframe_options='{"interval_s": 0.5, "dedup_distance": -1}'),
    )
    assets = [media_catalog, shots_and_keyframes, frame_text]
    result = helpers.materialize(assets, partition_key="1990s", resources=resources)
    assert result.success
    wh = Warehouse(str(tmp_path / "wh"))
    keyframes = {r["row_id"]: r for r in wh.read("keyframes").to_pylist()}
    lines = wh.read("frame_text").to_pylist()
    assert len(keyframes) >= 5
    by_frame: dict[str, str] = {}
    for row in sorted(lines, key=lambda r: r["line_index"]):
        by_frame[row["keyframe_id"]] = by_frame.get(row["keyframe_id"], "") + " " + row["text"]
    assert set(by_frame) == set(keyframes)
    for keyframe_id, text in by_frame.items():  # the frame shown at the keyframe's time
        assert f"Frame = {keyframes[keyframe_id]['frame_index'] + 1}" in text, text
    md = result.asset_materializations_for_node("frame_text")[0].metadata
    assert md["ocr_lines"].value == len(lines) and md["keyframes_read"].value == len(keyframes)
    again = helpers.materialize(assets, partition_key="1990s", resources=resources)
    md = again.asset_materializations_for_node("frame_text")[0].metadata
    assert (md["reused_from_cache"].value, md["computed"].value) == (1, 0)


def _long_s_share(truth: str, reading: str) -> float:
    read, total = long_s_words(truth, reading)
    return read / total


def test_generated_fraktur_pages_are_read_as_printed(ocr, tmp_path):
    """German pages set in two Fraktur fonts with the long s (and in Antiqua), an English page
    in Antiqua (quality.generated): Fraktur is recognised and read by the Fraktur model, its
    long-s words as printed; Antiqua keeps PP-OCR's reading; each page's language is found."""
    fonts = fraktur_font_dir()
    assert fonts is not None, "the Fraktur fonts are missing: `make fonts` (make test runs it)"
    for path, page in printed_pages(tmp_path, fonts, texts=("de_brief", "en_mill")):
        lines, script = ocr.read_page(np.asarray(Image.open(path).convert("RGB")))
        truth, reading = "\n".join(page.lines), page_text(lines)
        cer = character_error_rate(normalise_print(truth), normalise_print(reading))
        languages = line_languages([normalise_print(line.text) for line in lines], "auto")
        print(f"{page.name}: {script} CER {cer:.4f} {long_s_words(truth, reading)}")
        assert script == page.script, page.name
        assert cer <= 0.03, (page.name, cer)
        assert max(set(languages), key=languages.count) == page.language
        if page.script == "Fraktur":
            assert _long_s_share(truth, reading) >= 0.85, reading
        else:
            assert "ſ" not in reading


def test_the_1784_fraktur_page_reads_its_long_s(ocr, shared_media):
    """The real Fraktur page (kant_1784_p17, ground truth per line): its long-s words are read
    as printed ("iſt", "ſich"), where PP-OCR alone reads ſ as f in every one of them, and the
    search form is nearer the truth than PP-OCR's reading."""
    page = shared_media / "ocr/kant_1784_p17"
    image = np.asarray(Image.open(page.with_suffix(".tif")).convert("RGB"))
    truth = page.with_suffix(".gt.txt").read_text()
    lines, script = ocr.read_page(image)
    plain = ocr.read(image)  # PP-OCR's reading of the same page
    cer = character_error_rate(normalise_print(truth), normalise_print(page_text(lines)))
    plain_cer = character_error_rate(normalise_print(truth), normalise_print(page_text(plain)))
    share = _long_s_share(truth, page_text(lines))
    print(f"kant_1784_p17: CER {cer:.4f} (PP-OCR {plain_cer:.4f}), long-s words {share:.2f}")
    assert script == "Fraktur"
    assert share >= 0.6 and _long_s_share(truth, page_text(plain)) == 0
    assert cer < plain_cer
    rows = frame_text_rows(
        OcrItem(CatalogItem("kant", "kant.tif", "kant", "", None), (), ""),
        FrameTexts([FrameText(KeyframeRef("k", 0, 0, 0.0), lines, script)]),
        decade="1780s",
        language="auto",
    )
    assert {r["script"] for r in rows} == {"Fraktur"}
    assert any("ſ" in r["text"] and "ſ" not in r["normalised"] for r in rows)
    assert [r["language"] for r in rows].count("de") >= 0.8 * len(rows)
    forced = frame_text_rows(
        OcrItem(CatalogItem("kant", "kant.tif", "kant", "", None), (), ""),
        FrameTexts([FrameText(KeyframeRef("k", 0, 0, 0.0), lines)]),
        decade="1780s",
        language="de",
    )
    assert {r["language"] for r in forced} == {"de"}


def test_the_fraktur_check_is_off_and_out_of_scope_where_asked(tmp_path):
    off = FrameTextStage(LocalStore("."), settings=OcrSettings(fraktur="off"))
    off.setup()
    assert off._historic is None and "tesserocr" not in off.model_id
    assert "tesserocr" in FrameTextStage(LocalStore(".")).model_id
    assert OcrSettings().historic_print_in("image") and not OcrSettings().historic_print_in("video")
    assert OcrSettings(fraktur="all").historic_print_in("video")
    with pytest.raises(ValueError, match="ARCHIVE_OCR_FRAKTUR"):
        OcrSettings(fraktur="sometimes")
    missing = FrameTextStage(LocalStore("."), settings=OcrSettings(tessdata=str(tmp_path)))
    with pytest.raises(ModelUnavailableError, match="tesseract-ocr-script-frak"):
        missing.setup()


def test_historic_print_needs_the_long_s_in_enough_words():
    def lines(*texts):
        return [TextLine(t, 0.9, (0, 0, 1, 0, 1, 1, 0, 1)) for t in texts]

    modern = lines("Die neue Fähre nach Spandau fährt ab Montag, sagt der Rath", "der Stadt.")
    assert not is_historic_print(modern)
    old = lines("Was iſt Aufklärung? Aufklärung iſt der Ausgang des Menſchen aus", "ſeiner Schuld")
    assert is_historic_print(old)
    assert not is_historic_print(lines("iſt ſich ſind"))  # too few words to tell
