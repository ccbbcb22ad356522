"""A tiny RANDOMLY INITIALISED OpenCLIP model: config JSON plus checkpoint file (plumbing only).

No OpenCLIP weights are available offline. Tests write a tiny architecture config and a
checkpoint of its random initialisation, then configure the pipeline with them exactly as a
real model is configured (ARCHIVE_CLIP_MODEL=<config.json>, ARCHIVE_CLIP_PRETRAINED=<file>).
The vectors are meaningless: this exercises loading, batching and storage, never quality.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_RANDOM_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def build_random_clip(root: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """Write tiny-random-clip.json and its random checkpoint; return (config, checkpoint)."""
    import open_clip
    import torch

    root.mkdir(parents=True, exist_ok=True)
    config = root / "tiny-random-clip.json"
    config.write_text(json.dumps(TINY_RANDOM_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    model = open_clip.create_model("tiny-random-clip", pretrained=None)
    checkpoint = root / "tiny-random-clip.pt"
    torch.save(model.state_dict(), checkpoint)
    return config, checkpoint
