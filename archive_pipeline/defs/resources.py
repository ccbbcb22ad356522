"""Dagster resources: the media store, the Lance warehouse, Ray and the model settings, bound
for every asset by `resources()` below.

A field left unset (None, the default) means its setting (`archive_pipeline.config.settings`), read
from the environment at run time; a value given here (tests, a deployment's own Definitions)
wins. Each field's description names its variable and default.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any, ClassVar

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from archive_pipeline.config import paths, settings
from archive_pipeline.core import workers
from archive_pipeline.core.audio import DecodedAudioCache
from archive_pipeline.core.compute import Compute, InlineCompute, StageResources
from archive_pipeline.core.guard import RemovalGuard
from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.core.ray_runtime import RayRuntime
from archive_pipeline.core.s3_store import S3Store
from archive_pipeline.core.store import Store, fetch_cache_dir, open_store
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.runs import PROCESS_TAG, TRIGGER_TAG, process_tag, trigger_of
from archive_pipeline.stages.writer import CommitPolicy

log = logging.getLogger(__name__)


def from_setting(setting: settings.Setting) -> Any:
    """A resource field for a setting: unset (None) means the variable, read at run time."""
    return Field(default=None, description=setting.field_description())


class SettingsResource(dg.ConfigurableResource):
    """A resource whose unset fields are read from their settings when used."""

    settings_group: ClassVar[str] = ""

    def overrides(self) -> dict[str, Any]:
        """The fields given a value (they win over the environment)."""
        return {
            name: getattr(self, name)
            for name in settings.group(self.settings_group)
            if getattr(self, name) is not None
        }

    def values(self) -> SimpleNamespace:
        """Every setting of this resource, now: a field's value, else its variable's."""
        return settings.resolve(self.settings_group, self.overrides())


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
        default=settings.FETCH_CACHE_MB.default, description=settings.FETCH_CACHE_MB.description
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
            cache_dir=fetch_cache_dir(self.fetch_cache_mb),
            cache_max_mb=self.fetch_cache_mb,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Remove this machine's fetch cache: the run is over."""
        self.get_store().clear_cache()


class InboxMediaStore(MediaStore, SettingsResource):
    """The media store ARCHIVE_INBOX names when the run starts: a folder or s3://bucket/prefix."""

    settings_group: ClassVar[str] = "media_store"
    location: str | None = from_setting(settings.INBOX)
    s3_endpoint_url: str | None = from_setting(settings.S3_ENDPOINT_URL)
    s3_region: str | None = from_setting(settings.AWS_REGION)
    fetch_cache_mb: int | None = from_setting(settings.FETCH_CACHE_MB)

    def get_store(self) -> LocalStore | S3Store:
        """The store the settings name now (boto3's credentials for S3)."""
        return open_store(self.overrides())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Remove this machine's fetch cache of an S3 inbox: the run is over."""
        store = self.get_store()
        if isinstance(store, S3Store):
            store.clear_cache()


def record_run_process(context: dg.InitResourceContext) -> None:
    """Tag the run with this process (PROCESS_TAG) and, for runs of the UI's buttons and of
    backfills, with what launched it (TRIGGER_TAG), once; nothing outside a run."""
    run, instance = context.dagster_run, context.instance
    if run is None or instance is None or PROCESS_TAG in run.tags:
        return
    tags = {PROCESS_TAG: process_tag()}
    if TRIGGER_TAG not in run.tags:
        tags[TRIGGER_TAG] = trigger_of(run.tags)
    try:
        instance.add_run_tags(run.run_id, tags)
    except Exception as exc:  # a tag is a convenience: never fail the run for it
        log.warning("run %s not tagged with its process: %s", run.run_id, exc)


class LanceWarehouse(SettingsResource):
    """The Lance warehouse: a local folder or an s3:// URI, written with atomic decade replaces."""

    settings_group: ClassVar[str] = "warehouse"
    root: str | None = from_setting(settings.WAREHOUSE)
    version_retention_minutes: int | None = from_setting(settings.VERSION_RETENTION_MINUTES)
    commit_every: str | None = from_setting(settings.COMMIT_EVERY)
    writer_wait_s: float | None = from_setting(settings.WRITER_WAIT_S)
    writer_lease_s: float | None = from_setting(settings.WRITER_LEASE_S)
    max_removal_fraction: float | None = from_setting(settings.MAX_REMOVAL_FRACTION)
    allow_removals: bool | None = from_setting(settings.ALLOW_REMOVALS)
    s3_endpoint_url: str | None = from_setting(settings.S3_ENDPOINT_URL)
    s3_region: str | None = from_setting(settings.AWS_REGION)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Check every setting before any work (a bad value fails the step naming its
        variable), and record on the run which process executes it (every asset writes the
        warehouse, so every run passes here): a run worker killed with -9 can then be marked
        failed."""
        settings.require_valid()
        self.values()  # the fields given in code, range-checked
        self.commit_policy()  # its keys and ranges
        record_run_process(context)

    def removal_guard(self) -> RemovalGuard:
        """The deletion guard's settings now."""
        v = self.values()
        return RemovalGuard(max_fraction=v.max_removal_fraction, allow=v.allow_removals)

    def get_warehouse(self, *, read_only: bool = False) -> Warehouse:
        """A Dagster-free Warehouse with these settings (read-only: it creates nothing)."""
        return Warehouse.from_settings(self.overrides(), read_only=read_only)

    def commit_policy(self) -> CommitPolicy:
        """When the stages commit their finished items (ARCHIVE_COMMIT_EVERY)."""
        return CommitPolicy.parse(self.values().commit_every)


class RayResource(SettingsResource):
    """Ray for the model stages: local Ray on 127.0.0.1, or an existing cluster by address."""

    settings_group: ClassVar[str] = "ray"
    address: str | None = from_setting(settings.RAY_ADDRESS)
    num_cpus: int | None = from_setting(settings.RAY_NUM_CPUS)
    resource_wait_s: int | None = from_setting(settings.RAY_RESOURCE_WAIT_S)
    stage_resources: str | None = from_setting(settings.STAGE_RESOURCES)
    include_dashboard: bool | None = from_setting(settings.RAY_DASHBOARD)
    item_timeout_s: float | None = from_setting(settings.ITEM_TIMEOUT_S)
    worker_memory_mb: int | None = from_setting(settings.WORKER_MEMORY_MB)
    shutdown_after_run: bool = Field(
        default=True,
        description="Stop the Ray this run started when it ends (the command-line runner keeps "
        "one Ray across its decades and stops it itself).",
    )
    _runtime: RayRuntime | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Prepare the runtime; Ray starts on the first stage that needs it (once per run)."""
        paths.contain_library_caches()
        v = self.values()
        if v.address != "inline":
            self._runtime = RayRuntime(
                v.address,
                num_cpus=v.num_cpus,
                resource_wait_s=v.resource_wait_s,
                include_dashboard=v.include_dashboard,
                item_timeout_s=v.item_timeout_s,
                worker_memory_mb=v.worker_memory_mb,
                temp_dir=str(paths.archive_home() / "ray"),  # a local Ray's session folder
                service_file=workers.service_file(paths.archive_home()),  # warm workers
            )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Stop Ray if this run started it (unless asked to keep it for the next run)."""
        if self._runtime is not None and self.shutdown_after_run:
            self._runtime.shutdown()

    def compute(self) -> Compute:
        """What maps stages over items: the Ray runtime, or inline execution."""
        if self.values().address == "inline":
            return InlineCompute()
        if self._runtime is None:  # used outside a Dagster run
            self.setup_for_execution(dg.build_init_resource_context())
        return self._runtime

    def resources_for(self, stage: str, defaults: StageResources) -> StageResources:
        """A stage's declared resources with this deployment's overrides applied."""
        try:
            overrides: dict[str, Any] = json.loads(self.values().stage_resources or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"ARCHIVE_STAGE_RESOURCES is not valid JSON: {exc}") from None
        return defaults.with_overrides(overrides.get(stage))

    def resources_of(self, stage: type) -> StageResources:
        """`resources_for` a stage class (its name and default resources)."""
        return self.resources_for(stage.name, stage.default_resources)


class VisionModels(SettingsResource):
    """Models and settings of the vision stages: shots, keyframes, OCR, embeddings."""

    settings_group: ClassVar[str] = "vision_models"
    shot_detector: str | None = from_setting(settings.SHOT_DETECTOR)
    shot_threshold: float | None = from_setting(settings.SHOT_THRESHOLD)
    device: str | None = from_setting(settings.DEVICE)
    keyframe_options: str | None = from_setting(settings.KEYFRAME_OPTIONS)
    ocr_backend: str | None = from_setting(settings.OCR_BACKEND)
    ocr_language: str | None = from_setting(settings.OCR_LANGUAGE)
    ocr_fraktur: str | None = from_setting(settings.OCR_FRAKTUR)
    ocr_options: str | None = from_setting(settings.OCR_OPTIONS)
    clip_model: str | None = from_setting(settings.CLIP_MODEL)
    clip_pretrained: str | None = from_setting(settings.CLIP_PRETRAINED)
    text_model: str | None = from_setting(settings.TEXT_MODEL)

    def shots(self) -> dict[str, Any]:
        """The shot detector's settings: detector, threshold, device (ShotsStage's keywords)."""
        v = self.values()
        return {"detector": v.shot_detector, "threshold": v.shot_threshold, "device": v.device}

    def keyframes(self):
        """KeyframeSettings for the shots/keyframes stage."""
        from archive_pipeline.stages.keyframes import KeyframeSettings

        return KeyframeSettings.from_settings(self.overrides())

    def ocr(self):
        """OcrSettings for the frame_text stage."""
        from archive_pipeline.stages.ocr import OcrSettings

        return OcrSettings.from_settings(self.overrides())

    def clip(self):
        """ClipSettings for the embedding stages."""
        from archive_pipeline.core.embedders import ClipSettings

        return ClipSettings.from_settings(self.overrides())


class SpeechModels(SettingsResource):
    """Models of the speech stages: Whisper (faster-whisper) and the diarisation backend."""

    settings_group: ClassVar[str] = "speech_models"
    whisper_model: str | None = from_setting(settings.WHISPER_MODEL)
    device: str | None = from_setting(settings.DEVICE)
    whisper_options: str | None = from_setting(settings.WHISPER_OPTIONS)
    whisper_language: str | None = from_setting(settings.WHISPER_LANGUAGE)
    diarization_backend: str | None = from_setting(settings.DIARIZATION_BACKEND)
    pyannote_pipeline: str | None = from_setting(settings.PYANNOTE_PIPELINE)
    hf_token: str | None = from_setting(settings.HF_TOKEN)

    def audio_cache(self) -> DecodedAudioCache:
        """Where transcripts keeps each recording's decoded audio for speaker_turns (per node,
        removed when the run ends): audio is decoded once per run."""
        return DecodedAudioCache(str(paths.cache() / "audio"))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Remove the run's decoded audio."""
        self.audio_cache().clear()

    def whisper(self):
        """WhisperSettings for the transcripts stage."""
        from archive_pipeline.stages.transcription import WhisperSettings

        return WhisperSettings.from_settings(self.overrides())

    def diarisation(self):
        """DiarizationSettings for the speaker_turns stage."""
        from archive_pipeline.stages.diarisation import DiarizationSettings

        return DiarizationSettings.from_settings(self.overrides())


class CheckSettings(SettingsResource):
    """Thresholds of the per-decade asset checks."""

    settings_group: ClassVar[str] = "check_settings"
    max_failure_fraction: float | None = from_setting(settings.MAX_FAILURE_FRACTION)
    max_failure_fractions: str | None = from_setting(settings.MAX_FAILURE_FRACTIONS)

    def failure_threshold(self, asset: str) -> float:
        """The failed fraction of a decade's items from which `asset`'s failure_rate check is
        an error: its own (ARCHIVE_MAX_FAILURE_FRACTIONS), else the common one."""
        v = self.values()
        try:
            own = json.loads(v.max_failure_fractions or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"ARCHIVE_MAX_FAILURE_FRACTIONS is not valid JSON: {exc}") from None
        if not isinstance(own, dict) or not all(isinstance(x, int | float) for x in own.values()):
            raise ValueError('ARCHIVE_MAX_FAILURE_FRACTIONS must map assets to numbers: {"a": 0.2}')
        return float(own.get(asset, v.max_failure_fraction))


class SearchIndex(SettingsResource):
    """How search_documents is indexed and searched: the vector index and relevance floors."""

    settings_group: ClassVar[str] = "search_index"
    vector_index: str | None = from_setting(settings.SEARCH_VECTOR_INDEX)
    min_similarity: float | None = from_setting(settings.SEARCH_MIN_SIMILARITY)

    def settings(self):
        """IndexSettings for `archive_pipeline.search.indexes`."""
        from archive_pipeline.search.indexes import IndexSettings

        return IndexSettings.from_settings(self.overrides())


@dg.definitions
def resources() -> dg.Definitions:
    """The resources shared by every area."""
    return dg.Definitions(
        resources={
            "media_store": InboxMediaStore(),
            "warehouse": LanceWarehouse(),
            "ray": RayResource(),
            "speech_models": SpeechModels(),
            "vision_models": VisionModels(),
            "search_index": SearchIndex(),
            "check_settings": CheckSettings(),
        }
    )
