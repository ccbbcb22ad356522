"""The PaddleOCR backend (design-card engine) on real media. Runs in its own environment
(`make test` lane 2: .venv-paddle with the `paddle` extra), selected with `-m paddle`."""

import numpy as np
import pytest
from PIL import Image

from archive_pipeline.config.models import ModelUnavailableError
from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.quality import character_error_rate
from archive_pipeline.stages.base import CatalogItem
from archive_pipeline.stages.ocr import FrameTextStage, KeyframeRef, OcrItem, OcrSettings

pytestmark = [pytest.mark.paddle, pytest.mark.slow]


@pytest.fixture(scope="module")
def paddle(shared_media):
    stage = FrameTextStage(LocalStore(str(shared_media)), settings=OcrSettings(backend="paddleocr"))
    stage.setup()
    return stage


def test_paddleocr_reads_phototest(paddle, shared_media):
    image = np.asarray(Image.open(shared_media / "ocr/phototest.tif").convert("RGB"))
    lines = paddle.read(image)
    text = "\n".join(line.text for line in lines)
    cer = character_error_rate((shared_media / "ocr/phototest.txt").read_text(), text)
    print(f"phototest CER {cer:.4f} ({paddle.model_id})")
    assert cer <= 0.05
    assert len(lines) == 8 and all(len(line.box) == 8 for line in lines)


def test_paddleocr_reads_counter_keyframes_from_the_video(paddle):
    video = CatalogItem("video/counter.mp4", "video/counter.mp4", "counter", "counter", 3.0)
    keyframes = tuple(
        KeyframeRef(f"kf{i}", i, 0, i / 10) for i in range(0, 30, 3)
    )  # every third frame, read at full resolution from the source
    result = paddle.process(OcrItem(video, keyframes, "test"))
    read = {
        frame.keyframe.keyframe_index: " ".join(line.text for line in frame.lines)
        for frame in result.frames
    }
    correct = sum(f"Frame = {i + 1}" in read.get(i, "") for i in range(0, 30, 3))
    print(f"counter.mp4 (PaddleOCR): {correct}/10 keyframes read exactly")
    assert correct >= 9, read


def test_missing_paddle_model_dir_names_the_setting(tmp_path):
    settings = OcrSettings(backend="paddleocr", paddle_rec_dir=str(tmp_path / "nope"))
    with pytest.raises(ModelUnavailableError, match="ARCHIVE_OCR_OPTIONS paddle_rec_dir"):
        FrameTextStage(LocalStore("."), settings=settings).setup()
