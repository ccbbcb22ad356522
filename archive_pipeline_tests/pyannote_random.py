"""RANDOMLY INITIALISED pyannote models in pyannote's on-disk pipeline layout (plumbing only).

No pyannote weights are available offline, so tests build a SpeakerDiarization pipeline
directory like the published ones (config.yaml, segmentation/ and embedding/pytorch_model.bin,
plda/xvec_transform.npz and plda/plda.npz) with random weights. Its output is meaningless:
it exercises loading and running the pyannote backend, never quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml


def build_random_pyannote_pipeline(root: Path, *, seed: int = 0) -> Path:
    """Write a random-weight SpeakerDiarization pipeline directory; return its path."""
    import lightning
    import pyannote.audio
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(seed)
    for sub in ("segmentation", "embedding", "plda"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    def save(model, path: Path) -> None:
        checkpoint = {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__,
        }
        model.on_save_checkpoint(checkpoint)  # pyannote's own metadata block
        torch.save(checkpoint, path)

    segmentation = PyanNet(sincnet={"stride": 10})
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        min_duration=10.0,
        warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    segmentation.build()
    save(segmentation, root / "segmentation/pytorch_model.bin")
    embedding = WeSpeakerResNet34()
    embedding.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0
    )
    save(embedding, root / "embedding/pytorch_model.bin")

    rng = np.random.default_rng(seed)
    dim, lda = 256, 128
    np.savez(
        root / "plda/xvec_transform.npz",
        mean1=rng.normal(size=dim).astype(np.float32),
        mean2=rng.normal(size=lda).astype(np.float32),
        lda=rng.normal(size=(dim, lda)).astype(np.float32),
    )
    orthonormal, _ = np.linalg.qr(rng.normal(size=(lda, lda)))
    np.savez(
        root / "plda/plda.npz",
        mu=np.zeros(lda),
        tr=orthonormal,
        psi=np.abs(rng.normal(size=lda)) + 0.5,
    )
    config = {
        "dependencies": {"pyannote.audio": pyannote.audio.__version__},
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {
                "clustering": "VBxClustering",
                "embedding": "$model/embedding",
                "embedding_batch_size": 8,
                "embedding_exclude_overlap": True,
                "plda": "$model/plda",
                "segmentation": "$model/segmentation",
                "segmentation_batch_size": 8,
            },
        },
        "params": {
            "clustering": {"threshold": 0.6, "Fa": 0.07, "Fb": 0.8},
            "segmentation": {"min_duration_off": 0.0},
        },
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root
