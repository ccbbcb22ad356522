"""Keyframes from the shots decode pass: selection, duplicates, thumbnails, edge cases."""

import io
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.core.video import FrameViews, frames_at, iter_frames
from archive_pipeline.demo.build import captioned_video
from archive_pipeline.stages.base import CatalogItem
from archive_pipeline.stages.keyframes import KeyframeSettings
from archive_pipeline.stages.shots import ShotsStage

pytestmark = pytest.mark.slow


def item(key):
    return CatalogItem(uri=key, store_key=key, media_id=key, sha256=key, duration_s=None)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory, shared_media):
    root = tmp_path_factory.mktemp("keyframes")
    bikes = shared_media / "video/bikes.mp4"
    shutil.copyfile(bikes, root / "bikes.mp4")
    # A-B-A: a still (a bikes frame) for 1.2 s, colour bars for 2.4 s, the still again
    ffmpeg("-i", bikes, "-vf", "select=eq(n\\,13)", "-frames:v", "1", root / "still.png")
    ffmpeg(
        "-loop", "1", "-framerate", "25", "-t", "1.2", "-i", root / "still.png",
        "-f", "lavfi", "-i", "smptebars=s=640x272:r=25:d=2.4",
        "-loop", "1", "-framerate", "25", "-t", "1.2", "-i", root / "still.png",
        "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1,format=yuv420p[v]",
        "-map", "[v]", "-c:v", "libx264", root / "aba.mp4",
    )  # fmt: skip
    # title cards as the demo's news makes them: flat colours, a caption each; pHash alike
    captioned_video(
        ["EVENING NEWS", "TRAM LINE", "RECORD CATCH"],
        ["navy", "pattern", "darkgreen"],
        root / "cards.mp4",
        shot_s=1.2,
        audio=None,
    )
    # one 25-second shot: a long shot gets one keyframe per interval
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=25", "-c:v", "libx264",
        "-pix_fmt", "yuv420p", root / "long.mp4",
    )  # fmt: skip
    ffmpeg("-i", bikes, "-c", "copy", "-metadata:s:v:0", "rotate=90", root / "rotated.mp4")
    return root


@pytest.fixture(scope="module")
def stage(video_dir, shot_models):
    """What is tested here is the keyframe selection over the shots found, whatever found them:
    PySceneDetect's content detector finds these hard cuts where TransNetV2 does (bikes: the
    same 6 shots; test_shots tests the detectors) for a sixth of TransNetV2's CPU. The text
    probe is the default's."""
    return ShotsStage(LocalStore(str(video_dir)), detector="content", **shot_models)


def with_settings(stage, **settings):
    keyframes = KeyframeSettings(**settings)
    models = stage.loaded_models()
    if not keyframes.text_every_s:
        models["text_detector"] = None
    return ShotsStage(stage.store, detector=stage.detector, keyframes=keyframes, **models)


def test_every_shot_has_a_keyframe_inside_it(stage):
    result = stage.process(item("bikes.mp4"))
    shots, keyframes = result.shots, result.keyframes
    assert sorted({k["shot_index"] for k in keyframes}) == list(range(len(shots))) == list(range(6))
    for k in keyframes:
        shot = shots[k["shot_index"]]
        assert shot["start_frame"] <= k["frame_index"] <= shot["end_frame"]
        assert shot["start_s"] <= k["time_s"] < shot["end_s"]
    # the last shot (frames 242-249, 0.32 s) falls between grid times: its first frame was taken
    # as a candidate because the image jumps there
    assert [k["frame_index"] for k in keyframes if k["shot_index"] == 5] == [242]


def test_a_shot_without_any_candidate_gets_its_middle_frame_by_seeking(stage, monkeypatch):
    import archive_pipeline.core.video as video

    calls = []
    real = video.frames_at
    monkeypatch.setattr(video, "frames_at", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    result = with_settings(stage, candidate_on_change=None).process(item("bikes.mp4"))
    assert [k["frame_index"] for k in result.keyframes if k["shot_index"] == 5] == [246]
    assert len(calls) == 1 and len(calls[0]) == 1  # one seek, for that shot only


def test_thumbnails_are_small_images_of_the_frame(stage, video_dir):
    keyframes = stage.process(item("bikes.mp4")).keyframes
    first = keyframes[0]
    image = Image.open(io.BytesIO(first["thumbnail"]))
    assert (image.format, image.size) == ("JPEG", (320, 136))
    assert (first["thumbnail_width"], first["thumbnail_height"]) == (320, 136)
    assert first["full_frame"] is None
    [(_, frame)] = list(frames_at(video_dir / "bikes.mp4", [first["time_s"]], width=320))
    assert np.abs(np.asarray(image, dtype=float) - frame).mean() < 6  # JPEG noise only
    assert all(len(k["thumbnail"]) < 40_000 for k in keyframes)


def test_full_frames_and_webp_when_configured(stage):
    keyframes = (
        with_settings(stage, full_frames=True, thumbnail_format="webp")
        .process(item("bikes.mp4"))
        .keyframes
    )
    assert Image.open(io.BytesIO(keyframes[0]["thumbnail"])).format == "WEBP"
    full = Image.open(io.BytesIO(keyframes[0]["full_frame"]))
    assert (full.format, full.size) == ("JPEG", (640, 272))


def test_near_duplicate_is_removed_and_recorded(stage):
    kept = stage.process(item("aba.mp4"))
    assert [s["start_frame"] for s in kept.shots] == [0, 30, 90]
    assert [k["shot_index"] for k in kept.keyframes] == [0, 1]
    assert kept.duplicates_removed == 1
    [replaced] = kept.keyframes[0]["replaces"]
    assert replaced["shot_index"] == 2 and replaced["hash_distance"] <= 6
    assert replaced["changed_fraction"] <= 0.01
    off = with_settings(stage, dedup_distance=-1).process(item("aba.mp4"))
    assert [k["shot_index"] for k in off.keyframes] == [0, 1, 2]
    assert off.keyframes[0]["phash"] == kept.keyframes[0]["phash"]


def test_title_cards_with_different_text_are_not_duplicates(stage):
    result = stage.process(item("cards.mp4"))
    assert [k["shot_index"] for k in result.keyframes] == [0, 1, 2]
    first, last = (result.keyframes[i]["phash"] for i in (0, 2))
    bits = [np.unpackbits(np.frombuffer(bytes.fromhex(h), np.uint8)) for h in (first, last)]
    assert np.count_nonzero(bits[0] != bits[1]) <= 6  # pHash alone would have merged them


def test_long_shot_gets_one_keyframe_per_interval(stage):
    # no text probe (testsrc2 shows a running clock: text-aware sampling adds 'text' keyframes)
    plain = {"dedup_distance": -1, "text_every_s": 0}
    result = with_settings(stage, **plain).process(item("long.mp4"))
    assert len(result.shots) == 1
    times = [k["time_s"] for k in result.keyframes if k["reason"] == "shot"]
    assert times == pytest.approx([5.0, 15.0, 22.5], abs=0.05)  # middles of 0-10, 10-20, 20-25
    five = with_settings(stage, **plain, interval_s=5.0).process(item("long.mp4"))
    times = [k["time_s"] for k in five.keyframes if k["reason"] == "shot"]
    assert times == pytest.approx([2.5, 7.5, 12.5, 17.5, 22.5], abs=0.05)


def test_rotated_video_thumbnails_are_upright(stage):
    keyframes = stage.process(item("rotated.mp4")).keyframes
    image = Image.open(io.BytesIO(keyframes[0]["thumbnail"]))
    assert image.size[1] > image.size[0]  # portrait once the display rotation is applied


def test_candidates_come_from_the_same_pass_on_a_grid(video_dir):
    views = FrameViews(candidate_width=320, candidate_every_s=0.5)
    frames = list(iter_frames(video_dir / "bikes.mp4", views))
    assert all(f.small.shape == (27, 48, 3) for f in frames)
    with_candidate = [f.index for f in frames if f.candidate is not None]
    assert len(frames) == 250 and len(with_candidate) == 20 + 5  # one per 0.5 s, + 5 cuts
    assert with_candidate[:4] == [0, 13, 25, 30]  # 30: the first cut


def test_prefetch_passes_items_errors_and_stops_early():
    import threading

    from archive_pipeline.core.video import VideoDecodeError, prefetch

    assert list(prefetch(iter(range(100)), depth=4)) == list(range(100))

    def broken():
        yield 1
        raise VideoDecodeError("corrupt video data")

    with pytest.raises(VideoDecodeError, match="corrupt"):
        list(prefetch(broken()))
    before = threading.active_count()
    for value in prefetch(iter(range(10_000)), depth=2):
        if value == 3:
            break
    assert threading.active_count() == before  # the producer thread has stopped


def test_title_shown_mid_shot_becomes_a_text_keyframe_read_once(stage, video_dir):
    from archive_pipeline.quality.generated import Title, titled_video
    from archive_pipeline.stages.ocr import FrameTextStage, KeyframeRef, OcrItem

    title = Title("THE PEACH OPEN MOVIE PROJECT", 1.0, 3.0, size=28)
    titled_video(video_dir / "title.mp4", [title], duration_s=8.0)
    result = stage.process(item("title.mp4"))
    assert len(result.shots) == 1
    during = [k for k in result.keyframes if title.start_s <= k["time_s"] < title.end_s]
    assert [k["reason"] for k in during] == ["text"]  # three probes saw it: read once
    assert result.text_probes == 8
    ocr = FrameTextStage(stage.store)
    ocr.setup()
    refs = tuple(
        KeyframeRef(str(i), i, k["shot_index"], k["time_s"], k["frame_index"])
        for i, k in enumerate(result.keyframes)
    )
    read = ocr.process(OcrItem(item("title.mp4"), refs, "title"))
    assert title.text in [line.text for frame in read.frames for line in frame.lines]
    # without text-aware sampling no keyframe shows the title
    plain = with_settings(stage, text_every_s=0).process(item("title.mp4"))
    assert not [k for k in plain.keyframes if title.start_s <= k["time_s"] < title.end_s]
    assert {k["reason"] for k in plain.keyframes} == {"shot"}
