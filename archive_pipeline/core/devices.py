"""Where a model loads: `ARCHIVE_DEVICE` is `cpu`, `cuda` (`cuda:1`) or `auto`, resolved in the
process that loads the model. `auto` is CUDA only where this process may use a GPU: a Ray worker
uses one only if Ray gave it one (the stage asked for `num_gpus`), so Ray's accounting stays
true on a GPU node; outside Ray, any GPU the process sees."""

from __future__ import annotations

import sys


def cuda_devices() -> int:
    """How many CUDA devices this process sees (0 without a CUDA build of torch or CTranslate2)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    except ImportError:
        pass
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count()
    except ImportError:
        return 0


def ray_gpus() -> list | None:
    """The GPUs Ray assigned to this worker; None outside a Ray worker."""
    ray = sys.modules.get("ray")  # a process that never imported Ray is no Ray worker
    if ray is None or not ray.is_initialized():
        return None
    if ray.get_runtime_context().get_actor_id() is None:
        return None  # the driver, not a stage worker
    return list(ray.get_gpu_ids())


def resolve(device: str) -> str:
    """The device to load on: `auto` becomes `cuda` where this process may use a GPU, else
    `cpu`; anything else is returned as given."""
    if device != "auto":
        return device
    assigned = ray_gpus()
    if assigned is not None and not assigned:
        return "cpu"  # a worker that asked Ray for no GPU uses none
    return "cuda" if cuda_devices() > 0 else "cpu"
