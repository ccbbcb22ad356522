"""OCR (frame_text) with the default backend on real media: CER, counter frames, German."""

import csv
import re
import shutil

import dagster as dg
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from archive_pipeline.core.store import LocalStore
from archive_pipeline.core.video import frames_at
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.vision.assets import frame_text, shots_and_keyframes
from archive_pipeline.models import ModelUnavailableError
from archive_pipeline.quality import character_error_rate
from archive_pipeline.resources import VisionModels
from archive_pipeline.stages.ocr import FrameTextStage, OcrSettings, TextLine, reading_order
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
    path = shared_media / "video/counter.mp4"
    expected = {}
    with open(shared_media / "video/counter.expected_text.csv") as handle:
        for row in csv.DictReader(handle):
            expected[int(row["frame_index_0based"])] = row["expected_text"]
    frames = dict(frames_at(path, [i / 10 for i in range(30)]))
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
        vision_models=VisionModels(keyframe_interval_s=0.5, keyframe_dedup_distance=-1),
    )
    assets = [media_catalog, shots_and_keyframes, frame_text]
    result = dg.materialize(assets, partition_key="1990s", resources=resources)
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
    again = dg.materialize(assets, partition_key="1990s", resources=resources)
    md = again.asset_materializations_for_node("frame_text")[0].metadata
    assert (md["reused_from_cache"].value, md["computed"].value) == (1, 0)
