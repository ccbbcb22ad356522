"""Probing and hashing real media from ../shared/media and generated edge cases."""

import hashlib
import subprocess

import pytest

from archive_pipeline.core import media


def test_probe_audio(shared_media):
    result = media.probe_file(shared_media / "speech/jfk.flac", extension_kind="audio")
    assert result.kind == "audio"
    assert result.duration_s == pytest.approx(11.0, abs=0.1)
    assert (result.audio_sample_rate, result.audio_channels) == (44100, 2)
    assert result.n_video_streams == 0


def test_probe_video_with_audio(shared_media):
    result = media.probe_file(shared_media / "video/bigbuckbunny-5s.mp4", extension_kind="video")
    assert (result.kind, result.width, result.height) == ("video", 1280, 720)
    assert result.fps == pytest.approx(25.0)
    assert result.audio_channels == 6
    assert result.frame_count == pytest.approx(5.3 * 25, abs=3)


def test_probe_video_frame_count(shared_media):
    result = media.probe_file(shared_media / "video/bikes.mp4", extension_kind="video")
    assert (result.width, result.height, result.frame_count) == (640, 272, 250)
    assert result.n_audio_streams == 0


def test_probe_image(shared_media):
    result = media.probe_file(shared_media / "ocr/phototest.tif", extension_kind="image")
    assert (result.kind, result.width, result.height, result.duration_s) == (
        "image",
        640,
        480,
        None,
    )


def test_rotation_metadata_is_read(shared_media, tmp_path):
    out = tmp_path / "rotated.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(shared_media / "video/bikes.mp4"),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            str(out),
        ],
        check=True,
    )
    assert media.probe_file(out).rotation in (90, 270)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(media.EmptyFileError, match="empty"):
        media.probe_file(path)


def test_truncated_video_is_a_probe_error(shared_media, tmp_path):
    path = tmp_path / "truncated.mp4"
    path.write_bytes((shared_media / "video/bikes.mp4").read_bytes()[:3000])
    with pytest.raises(media.ProbeError, match="moov atom not found") as info:
        media.probe_file(path)
    assert "0x" not in str(info.value)  # no heap addresses: messages are reproducible


def test_not_media(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is text, not audio\n" * 20)
    with pytest.raises((media.ProbeError, media.UnsupportedMediaError)):
        media.probe_file(path)


def test_absurd_duration_rejected():
    info = {
        "format": {"format_name": "wav", "duration": str(10 * 24 * 3600)},
        "streams": [{"codec_type": "audio", "codec_name": "pcm_s16le"}],
    }
    with pytest.raises(media.AbsurdDurationError):
        media.interpret_probe(info, extension_kind="audio")


def test_cover_art_does_not_make_audio_a_video():
    info = {
        "format": {"format_name": "mp3", "duration": "3.0"},
        "streams": [
            {"codec_type": "audio", "codec_name": "mp3"},
            {"codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}},
        ],
    }
    assert media.interpret_probe(info, extension_kind="audio").kind == "audio"


def test_sha256_stream_matches_hashlib(shared_media):
    path = shared_media / "speech/jfk.flac"
    with open(path, "rb") as handle:
        assert media.sha256_stream(handle) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("a/b.MP4", "video"),
        ("x.flac", "audio"),
        ("p.TIF", "image"),
        ("n.txt", None),
        ("c.json", None),
    ],
)
def test_kind_from_extension(key, kind):
    assert media.kind_from_extension(key) == kind
