"""Where the embedded default keeps its state: all under ARCHIVE_HOME (default ./.archive)."""

from __future__ import annotations

from pathlib import Path

from archive_pipeline.config import settings


def archive_home() -> Path:
    """ARCHIVE_HOME, read when called (never at import time), default `./.archive`."""
    return Path(settings.ARCHIVE_HOME.read()).resolve()


def inbox() -> Path:
    """The local inbox folder: the embedded default media store."""
    return archive_home() / "inbox"


def warehouse() -> Path:
    """The local Lance warehouse folder."""
    return archive_home() / "warehouse"


def dagster_home() -> Path:
    """The Dagster instance folder (SQLite storage, logs)."""
    return archive_home() / "dagster_home"


def cache() -> Path:
    """Model weights and other caches."""
    return archive_home() / "cache"


def contain_library_caches() -> None:
    """Point libraries that keep caches in the system's temp folder at ARCHIVE_HOME/cache
    (torch's inductor writes /tmp/torchinductor_<user> when imported) or in the user's home
    (matplotlib, imported by pyannote.audio, writes ~/.cache/matplotlib and ~/.config/matplotlib).
    Called at run time, before Ray's workers start (they inherit it); an operator's own setting
    wins."""
    settings.set_library_default("TORCHINDUCTOR_CACHE_DIR", str(cache() / "torchinductor"))
    settings.set_library_default("MPLCONFIGDIR", str(cache() / "matplotlib"))
