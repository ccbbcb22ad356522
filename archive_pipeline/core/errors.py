"""Which failures are permanent: a property of the error class, declared where it is defined.

An item that failed with a permanent error gives the same error for the same bytes, so it is
not retried until its cache key changes (a new file state, new metadata, a new stage version).
Everything else (timeouts, memory, lost workers, unreadable entries, dangling links) is retried
on every run.
"""

from __future__ import annotations

import importlib

_PERMANENT: set[str] = set()
# the modules that declare permanent errors (imported before a name is looked up)
_DECLARED_IN = (
    "archive_pipeline.core.media",
    "archive_pipeline.core.audio",
    "archive_pipeline.core.video",
    "archive_pipeline.core.images",
    "archive_pipeline.core.decades",
    "archive_pipeline.core.store",
)


class PermanentError(Exception):
    """Base of errors that the same input always gives (corrupt, empty, unsupported media)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _PERMANENT.add(cls.__name__)


def register_permanent(*names: str) -> None:
    """Failure classes that are not exceptions (a store entry's problem) but permanent too."""
    _PERMANENT.update(names)


def is_permanent(error_class: str) -> bool:
    """Whether a recorded failure's class is permanent."""
    for module in _DECLARED_IN:
        importlib.import_module(module)
    return error_class in _PERMANENT


def permanent_errors() -> frozenset[str]:
    """Every permanent failure class known (for docs and tests)."""
    is_permanent("")
    return frozenset(_PERMANENT)
