"""Resources for every asset: local defaults, switched to S3 / a Ray cluster by environment.

Each setting is a `dg.EnvVar` when its variable is set (the UI shows the variable, not the
value) and the embedded local default otherwise. See README "Production settings".
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlparse

import dagster as dg
from dagster_aws.s3 import S3Resource

from archive_pipeline import paths
from archive_pipeline.core.compute import (
    DEFAULT_ITEM_TIMEOUT_REALTIME,
    DEFAULT_ITEM_TIMEOUT_S,
    DEFAULT_WORKER_MEMORY_MB,
)
from archive_pipeline.core.warehouse import (
    DEFAULT_COMMIT_EVERY_ITEMS,
    DEFAULT_COMMIT_EVERY_MEDIA_H,
    DEFAULT_COMMIT_EVERY_S,
)
from archive_pipeline.models import DEFAULT_TEXT_MODEL, DEFAULT_WHISPER
from archive_pipeline.resources import (
    CheckSettings,
    LanceWarehouse,
    LocalMediaStore,
    RayResource,
    S3MediaStore,
    SearchIndex,
    SpeechModels,
    VisionModels,
)
from archive_pipeline.search.query import DEFAULT_MIN_IMAGE_SIMILARITY, DEFAULT_MIN_SIMILARITY

T = TypeVar("T")

# Inside Dagster, settings taken from the environment stay `dg.EnvVar`s (shown as such in the
# UI, read at run time); `outside_run` builds resources with the values read now, for the CLIs.
_PLAIN_VALUES = contextvars.ContextVar("plain_values", default=False)


def outside_run(build: Callable[[], T]) -> T:
    """Call a `build_*` function with environment values read now instead of `dg.EnvVar`s."""
    token = _PLAIN_VALUES.set(True)
    try:
        return build()
    finally:
        _PLAIN_VALUES.reset(token)


def _str(name: str, default: str | None) -> str | dg.EnvVar | None:
    if not os.environ.get(name):
        return default
    return os.environ[name] if _PLAIN_VALUES.get() else dg.EnvVar(name)


def _int(name: str, default: int | None) -> int | dg.EnvVar | None:
    if not os.environ.get(name):
        return default
    return int(os.environ[name]) if _PLAIN_VALUES.get() else dg.EnvVar.int(name)


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if not value else value.lower() in ("1", "true", "yes", "on")


def _float(name: str, default: float | None) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else default


def build_media_store() -> LocalMediaStore | S3MediaStore:
    """ARCHIVE_INBOX: a folder (default $ARCHIVE_HOME/inbox) or s3://bucket/prefix."""
    inbox = os.environ.get("ARCHIVE_INBOX") or str(paths.inbox())
    parsed = urlparse(inbox)
    if parsed.scheme == "s3":
        return S3MediaStore(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            s3=S3Resource(
                endpoint_url=_str("ARCHIVE_S3_ENDPOINT_URL", None),
                region_name=_str("AWS_REGION", None),
            ),
            fetch_cache_mb=_int("ARCHIVE_FETCH_CACHE_MB", 10_240),
        )
    return LocalMediaStore(root=_str("ARCHIVE_INBOX", inbox))


def build_warehouse() -> LanceWarehouse:
    """ARCHIVE_WAREHOUSE: a folder (default $ARCHIVE_HOME/warehouse) or s3://bucket/prefix."""
    root = os.environ.get("ARCHIVE_WAREHOUSE") or str(paths.warehouse())
    endpoint = os.environ.get("ARCHIVE_S3_ENDPOINT_URL", "")
    return LanceWarehouse(
        root=_str("ARCHIVE_WAREHOUSE", root),
        version_retention_minutes=_int("ARCHIVE_VERSION_RETENTION_MINUTES", 60),
        commit_every_items=_int("ARCHIVE_COMMIT_EVERY_ITEMS", DEFAULT_COMMIT_EVERY_ITEMS),
        commit_every_s=_float("ARCHIVE_COMMIT_EVERY_S", DEFAULT_COMMIT_EVERY_S),
        commit_every_media_h=_float("ARCHIVE_COMMIT_EVERY_MEDIA_H", DEFAULT_COMMIT_EVERY_MEDIA_H),
        s3_endpoint_url=_str("ARCHIVE_S3_ENDPOINT_URL", None),
        s3_region=_str("AWS_REGION", None),
        s3_allow_http=endpoint.startswith("http://"),
    )


def build_ray(*, shutdown_after_run: bool = True) -> RayResource:
    """ARCHIVE_RAY_ADDRESS: 'local' (default), a cluster address, or 'inline'."""
    return RayResource(
        shutdown_after_run=shutdown_after_run,
        address=_str("ARCHIVE_RAY_ADDRESS", "local"),
        num_cpus=_int("ARCHIVE_RAY_NUM_CPUS", None),
        connect_timeout_s=_int("ARCHIVE_RAY_CONNECT_TIMEOUT_S", 30),
        resource_wait_s=_int("ARCHIVE_RAY_RESOURCE_WAIT_S", 0),
        stage_resources=_str("ARCHIVE_STAGE_RESOURCES", "{}"),
        item_timeout_s=_float("ARCHIVE_ITEM_TIMEOUT_S", DEFAULT_ITEM_TIMEOUT_S),
        item_timeout_realtime=_float(
            "ARCHIVE_ITEM_TIMEOUT_REALTIME", DEFAULT_ITEM_TIMEOUT_REALTIME
        ),
        worker_memory_mb=_int("ARCHIVE_WORKER_MEMORY_MB", DEFAULT_WORKER_MEMORY_MB),
    )


def build_speech_models() -> SpeechModels:
    """ARCHIVE_WHISPER_* and ARCHIVE_DIARIZATION_* / ARCHIVE_PYANNOTE_PIPELINE / HF_TOKEN."""
    return SpeechModels(
        whisper_model=_str("ARCHIVE_WHISPER_MODEL", DEFAULT_WHISPER),
        whisper_device=_str("ARCHIVE_WHISPER_DEVICE", "auto"),
        whisper_compute_type=_str("ARCHIVE_WHISPER_COMPUTE_TYPE", "int8"),
        whisper_beam_size=_int("ARCHIVE_WHISPER_BEAM_SIZE", 5),
        whisper_batched=_bool("ARCHIVE_WHISPER_BATCHED", False),
        whisper_batch_size=_int("ARCHIVE_WHISPER_BATCH_SIZE", 8),
        whisper_cpu_threads=_int("ARCHIVE_WHISPER_CPU_THREADS", 0),
        whisper_language=_str("ARCHIVE_WHISPER_LANGUAGE", None),
        whisper_language_per_span=_bool("ARCHIVE_WHISPER_LANGUAGE_PER_SPAN", True),
        diarization_backend=_str("ARCHIVE_DIARIZATION_BACKEND", "pyannote"),
        pyannote_pipeline=_str("ARCHIVE_PYANNOTE_PIPELINE", None),
        hf_token=_str("HF_TOKEN", None),
        diarization_device=_str("ARCHIVE_DIARIZATION_DEVICE", "cpu"),
    )


def build_vision_models() -> VisionModels:
    """ARCHIVE_SHOT_*, ARCHIVE_KEYFRAME_*, ARCHIVE_TEXT_*, ARCHIVE_THUMBNAIL_*, ARCHIVE_OCR_*,
    ARCHIVE_PADDLEOCR_*, ARCHIVE_CLIP_*, ARCHIVE_VISION_DEVICE."""
    return VisionModels(
        shot_detector=_str("ARCHIVE_SHOT_DETECTOR", "transnetv2"),
        shot_threshold=_float("ARCHIVE_SHOT_THRESHOLD", None),
        device=_str("ARCHIVE_VISION_DEVICE", "cpu"),
        keyframe_interval_s=_float("ARCHIVE_KEYFRAME_INTERVAL_S", 10.0),
        keyframe_dedup_distance=_int("ARCHIVE_KEYFRAME_DEDUP_DISTANCE", 6),
        keyframe_full_frames=_bool("ARCHIVE_KEYFRAME_FULL_FRAMES", False),
        text_sampling_s=_float("ARCHIVE_TEXT_SAMPLING_S", 1.0),
        text_probe_width=_int("ARCHIVE_TEXT_PROBE_WIDTH", 640),
        thumbnail_width=_int("ARCHIVE_THUMBNAIL_WIDTH", 320),
        thumbnail_format=_str("ARCHIVE_THUMBNAIL_FORMAT", "jpeg"),
        ocr_backend=_str("ARCHIVE_OCR_BACKEND", "rapidocr"),
        ocr_language=_str("ARCHIVE_OCR_LANGUAGE", "en"),
        ocr_min_confidence=_float("ARCHIVE_OCR_MIN_CONFIDENCE", 0.5),
        paddleocr_det_model=_str("ARCHIVE_PADDLEOCR_DET_MODEL", None),
        paddleocr_rec_model=_str("ARCHIVE_PADDLEOCR_REC_MODEL", None),
        clip_model=_str("ARCHIVE_CLIP_MODEL", None),
        clip_pretrained=_str("ARCHIVE_CLIP_PRETRAINED", None),
        text_model=_str("ARCHIVE_TEXT_MODEL", DEFAULT_TEXT_MODEL),
    )


def build_search_index() -> SearchIndex:
    """ARCHIVE_SEARCH_VECTOR_INDEX(_MIN_ROWS) and ARCHIVE_SEARCH_MIN(_IMAGE)_SIMILARITY."""
    return SearchIndex(
        vector_index=_str("ARCHIVE_SEARCH_VECTOR_INDEX", "IVF_HNSW_SQ"),
        vector_index_min_rows=_int("ARCHIVE_SEARCH_VECTOR_INDEX_MIN_ROWS", 20_000),
        min_similarity=_float("ARCHIVE_SEARCH_MIN_SIMILARITY", DEFAULT_MIN_SIMILARITY),
        min_image_similarity=_float(
            "ARCHIVE_SEARCH_MIN_IMAGE_SIMILARITY", DEFAULT_MIN_IMAGE_SIMILARITY
        ),
    )


def build_check_settings() -> CheckSettings:
    """ARCHIVE_MAX_FAILURE_FRACTION: above it a decade's failure_rate check is an error."""
    return CheckSettings(max_failure_fraction=_float("ARCHIVE_MAX_FAILURE_FRACTION", 0.5))


@dg.definitions
def resources() -> dg.Definitions:
    """The resources shared by every area."""
    return dg.Definitions(
        resources={
            "media_store": build_media_store(),
            "warehouse": build_warehouse(),
            "ray": build_ray(),
            "speech_models": build_speech_models(),
            "vision_models": build_vision_models(),
            "search_index": build_search_index(),
            "check_settings": build_check_settings(),
        }
    )
