"""Permanent failures are a property of the error class: corrupt images, videos and audio,
empty files and links out of the store are settled; timeouts and dangling links retried."""

from archive_pipeline.core.errors import is_permanent, permanent_errors


def test_corrupt_media_of_every_kind_is_permanent_and_transient_errors_are_not():
    for name in (
        "ImageDecodeError",
        "VideoDecodeError",
        "AudioDecodeError",
        "NoVideoStreamError",
        "EmptyFileError",
        "ProbeError",
        "MetadataError",
        "LinkOutsideStore",
        "SymlinkLoop",
    ):
        assert is_permanent(name), name
    for name in ("ItemTimeoutError", "ItemMemoryError", "DanglingLink", "UnreadableEntry", ""):
        assert not is_permanent(name), name
    assert "ImageDecodeError" in permanent_errors()
