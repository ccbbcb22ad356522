"""Small archives built by code for the asset and sensor tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def small_archive(root: Path, shared_media: Path) -> dict[str, str]:
    """Real media across three decades plus a corrupt and an empty file; key -> decade."""
    layout = {
        "1960s/jfk.flac": ("speech/jfk.flac", "1960s"),
        "tv/bikes_1994.mp4": ("video/bikes.mp4", "1990s"),
        "tv/decade=1990s/counter.mp4": ("video/counter.mp4", "1990s"),
        "reading/librivox-0880.wav": ("speech/librivox-0880.wav", "2000s"),  # sidecar
        "scans/phototest.tif": ("ocr/phototest.tif", "undated"),
    }
    expected = {}
    for key, (source, decade) in layout.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_media / source, root / key)
        expected[key] = decade
    (root / "reading/librivox-0880.wav.json").write_text(
        json.dumps({"title": "Sense and Sensibility", "year": 2004, "speakers": ["Reader"]})
    )
    (root / "1990s").mkdir(exist_ok=True)
    (root / "1990s/corrupt_tape.mp4").write_bytes(
        (shared_media / "video/bikes.mp4").read_bytes()[:4000]
    )
    (root / "1990s/empty_transfer.wav").write_bytes(b"")
    (root / "1990s/README.txt").write_text("not media: ignored")
    expected["1990s/corrupt_tape.mp4"] = "1990s"
    expected["1990s/empty_transfer.wav"] = "1990s"
    return expected
