"""Photos and scans as items: pages as keyframes (upright thumbnails), OCR, documents."""

import io
import shutil

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw, ImageFont

from archive_pipeline.contract.schemas import TABLES
from archive_pipeline.core.images import ImageDecodeError, iter_pages
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.vision.assets import frame_text, frame_text_checks, shots_and_keyframes
from archive_pipeline.defs.vision.checks import keyframes_checks, shots_checks
from archive_pipeline.search.documents import keyframe_documents
from archive_pipeline.stages.base import catalog_items
from archive_pipeline_tests import helpers
from archive_pipeline_tests.helpers import local_resources

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PAGES = ["Stadtarchiv Berlin Seite eins", "Second page of the report", "Dritte Seite Ende"]


def page(text: str, size=(1000, 600)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, size[0], 40], fill=(200, 0, 0))  # a red band marks the top
    draw.text((60, size[1] // 2), text, fill="black", font=ImageFont.truetype(FONT, 44))
    return image


@pytest.fixture(scope="module")
def stills(tmp_path_factory, shared_media):
    root = tmp_path_factory.mktemp("stills")
    inbox = root / "inbox" / "1980s"
    inbox.mkdir(parents=True)
    first, *rest = [page(text) for text in PAGES]
    first.save(inbox / "report.tif", save_all=True, append_images=rest, compression="tiff_lzw")
    # stored turned 90 degrees counter-clockwise; EXIF orientation 6 says turn it back
    upright = page("UPRIGHT PHOTO CAPTION")
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.rotate(90, expand=True).save(inbox / "rotated.jpg", exif=exif, quality=92)
    page("Transparent poster").convert("RGBA").save(inbox / "poster.png")
    page("Webp flyer text").save(inbox / "flyer.webp", quality=90)
    shutil.copyfile(shared_media / "ocr/phototest.tif", inbox / "phototest.tif")
    data = io.BytesIO()
    page("broken").save(data, format="JPEG")
    (inbox / "broken.jpg").write_bytes(data.getvalue()[:2000])
    resources = local_resources(root / "inbox", root / "wh")
    result = helpers.materialize(
        [
            media_catalog,
            shots_and_keyframes,
            frame_text,
            shots_checks,
            keyframes_checks,
            frame_text_checks,
        ],
        partition_key="1980s",
        resources=resources,
    )
    return root, result, Warehouse(str(root / "wh"))


@pytest.mark.slow
def test_pages_are_upright_rgb_one_at_a_time(stills):
    root, _, _ = stills
    pages = list(iter_pages(root / "inbox/1980s/report.tif"))
    assert [i for i, _ in pages] == [0, 1, 2]
    assert all(image.shape == (600, 1000, 3) for _, image in pages)
    _, rotated = next(iter_pages(root / "inbox/1980s/rotated.jpg"))
    assert rotated.shape == (600, 1000, 3)
    assert rotated[5, 500, 0] > 150 and rotated[5, 500, 1] < 80  # the red band is on top
    with pytest.raises(ImageDecodeError):
        list(iter_pages(root / "inbox/1980s/broken.jpg"))


@pytest.mark.slow
def test_stills_become_keyframes_with_text_and_one_document_per_page(stills):
    _, result, wh = stills
    assert result.success
    keyframes = wh.read("keyframes").to_pylist()
    by_file: dict[str, list[dict]] = {}
    for row in keyframes:
        by_file.setdefault(row["uri"].rsplit("/", 1)[-1], []).append(row)
    assert sorted(by_file) == [
        "flyer.webp",
        "phototest.tif",
        "poster.png",
        "report.tif",
        "rotated.jpg",
    ]
    report = sorted(by_file["report.tif"], key=lambda r: r["frame_index"])
    assert [r["frame_index"] for r in report] == [0, 1, 2]
    assert {r["reason"] for r in keyframes} == {"page"}
    thumb = np.asarray(Image.open(io.BytesIO(by_file["rotated.jpg"][0]["thumbnail"])))
    assert thumb.shape[1] > thumb.shape[0]  # landscape, as displayed
    assert thumb[2, thumb.shape[1] // 2, 0] > 150 and thumb[2, thumb.shape[1] // 2, 1] < 80
    assert wh.read("shots").num_rows == 0
    # the broken file is a recorded failure, the rest committed
    failures = wh.read("stage_items", filter="status = 'failed'").to_pylist()
    assert [f["uri"].rsplit("/", 1)[-1] for f in failures if f["stage"] == "shots"] == [
        "broken.jpg"
    ]
    documents = keyframe_documents(
        wh.read("keyframes"),
        wh.read("shots"),
        wh.read("frame_text"),
        pa.Table.from_pylist([], schema=TABLES["diarised_segments"].schema),
    )
    texts = {
        (d["uri"].rsplit("/", 1)[-1], i): d["text"]
        for i, d in enumerate(d for d in documents if d["uri"].endswith("report.tif"))
    }
    assert len(texts) == 3
    for (_, i), text in texts.items():
        assert PAGES[i].lower() in text.lower(), text
    rotated = next(d for d in documents if d["uri"].endswith("rotated.jpg"))
    assert "UPRIGHT PHOTO CAPTION" in rotated["text"]
    # the checks see the stills: rows for every item (no shots expected of a still)
    checks = {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}
    assert checks[("shots", "rows_for_every_item")].passed
    assert checks[("keyframes", "rows_for_every_item")].passed
    assert checks[("frame_text", "rows_for_every_item")].passed
    md = result.asset_materializations_for_node("shots_and_keyframes")
    assert any(m.metadata.get("stills") and m.metadata["stills"].value == 6 for m in md)


def test_audio_stages_list_stills_as_skipped():
    catalog = pa.Table.from_pylist(
        [
            {"store_key": "a.jpg", "kind": "image", "n_audio_streams": 0, "media_id": "a"},
            {"store_key": "b.mp4", "kind": "video", "n_audio_streams": 0, "media_id": "b"},
        ]
    )
    items, skipped = catalog_items(catalog, needs="audio")
    assert items == [] and dict(skipped)["a.jpg"] == "still image: no audio"


def test_photos_and_scans_load_no_video_model(tmp_path):
    """A still's pages are its keyframes: the shots stage set up for a decade of photos and
    scans loads neither TransNetV2 nor the text probe (they load on the first video)."""
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.shots import ShotsStage

    page("Stadtarchiv").save(tmp_path / "scan.png")
    stage = ShotsStage(LocalStore(str(tmp_path)))
    stage.setup()
    item = CatalogItem("scan.png", "scan.png", "m", "s", None, kind="image")
    result = stage.process(item)
    assert [k["reason"] for k in result.keyframes] == ["page"]
    assert stage._model is None and stage._text is None
