"""`ARCHIVE_DEVICE=auto`: a GPU only where the process may use one (in Ray: one Ray assigned)."""

from archive_pipeline.core import devices


def test_a_named_device_is_kept_and_auto_follows_the_gpus_this_process_may_use(monkeypatch):
    assert devices.resolve("cpu") == "cpu" and devices.resolve("cuda:1") == "cuda:1"
    monkeypatch.setattr(devices, "cuda_devices", lambda: 0)
    assert devices.resolve("auto") == "cpu"  # no CUDA at all
    monkeypatch.setattr(devices, "cuda_devices", lambda: 2)
    monkeypatch.setattr(devices, "ray_gpus", lambda: None)
    assert devices.resolve("auto") == "cuda"  # not a Ray worker: the GPUs it sees
    monkeypatch.setattr(devices, "ray_gpus", lambda: [])
    assert devices.resolve("auto") == "cpu"  # a Ray worker that asked for no GPU
    monkeypatch.setattr(devices, "ray_gpus", lambda: [1])
    assert devices.resolve("auto") == "cuda"  # Ray assigned it one (CUDA_VISIBLE_DEVICES)


def test_outside_a_ray_worker_there_is_no_ray_assignment():
    assert devices.ray_gpus() is None
