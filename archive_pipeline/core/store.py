"""Read-only access to the archive's object store: what the pipeline needs of one (`Store`), its
objects, the fetch cache's files, and the store the settings name (a local folder,
`core.local_store`, or S3, `core.s3_store`); what it holds is `core.inventory`.

The pipeline never writes, moves or deletes anything in the store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlparse

from archive_pipeline.config import paths, settings
from archive_pipeline.core.errors import register_permanent

if TYPE_CHECKING:
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.core.s3_store import S3Store


@dataclass(frozen=True)
class StoredObject:
    """One object in the store: key relative to the store root, size, modification time, etag."""

    key: str
    size: int
    mtime: float  # seconds since the epoch
    etag: str | None = None
    # An entry that cannot be read as a file: (error class, message); catalogued as a failure.
    problem: tuple[str, str] | None = None
    # A symbolic link: the key of the file it resolves to (inside the store).
    target: str | None = None

    @property
    def fingerprint(self) -> str:
        """A string that changes whenever the object's content may have changed."""
        return f"{self.size}:{self.mtime:.6f}:{self.etag or ''}"


class Store(Protocol):
    """What the pipeline needs from an object store: list, stat, open, a local copy, a URI."""

    def list_objects(self) -> Iterator[StoredObject]: ...
    def stat(self, key: str) -> StoredObject: ...
    def open(self, key: str) -> BinaryIO: ...
    def local_path(self, key: str) -> contextlib.AbstractContextManager[Path]: ...
    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]: ...
    def uri(self, key: str) -> str: ...
    def entry_uri(self, key: str) -> str: ...

    @property
    def root_uri(self) -> str: ...


# what keeps a store entry from being read, for good until the entry changes (a link to a folder
# or out of the store; a loop; a folder named like media); a dangling link or an unreadable entry
# may be mended, so it is retried
register_permanent("LinkOutsideStore", "SymlinkLoop", "LinkedFolder", "NotAFile")


@contextlib.contextmanager
def cache_entry(path: Path, max_bytes: int) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write a cache entry into. When the block ends
    without error, what was written becomes `path` atomically (a concurrent reader sees the
    whole file or none) and the folder is trimmed to `max_bytes`; otherwise nothing is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        yield part
        if part.exists():  # nothing written (e.g. the writer could not open it): no entry
            os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    evict(path.parent, max_bytes, keep=path)


def evict(folder: Path, max_bytes: int, *, keep: Path, grace_s: float = 600.0) -> None:
    """Remove the least recently used files of a cache folder until it holds at most
    `max_bytes` (never `keep`, nor files used in the last `grace_s`: a worker may hold them)."""
    import time

    files = []
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            stat = path.stat()
            files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    now = time.time()
    for mtime, size, path in sorted(files):
        if total <= max_bytes:
            return
        if path == keep or now - mtime < grace_s:
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            total -= size


def store_from_uri(
    uri: str, *, endpoint_url: str | None = None, region_name: str | None = None
) -> LocalStore | S3Store:
    """Build a store from a folder path or an `s3://bucket/prefix` URI."""
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.core.s3_store import S3Store

    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return S3Store(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint_url=endpoint_url,
            region_name=region_name,
        )
    if parsed.scheme in ("", "file"):
        return LocalStore(root=parsed.path if parsed.scheme == "file" else uri)
    raise ValueError(f"unsupported store URI {uri!r}: use a folder path or s3://bucket/prefix")


def read_bytes(store: Store, key: str, *, limit: int = 16 << 20) -> bytes:
    """Read a small object (sidecar, catalogue.csv) fully; refuse objects over `limit` bytes."""
    with contextlib.closing(store.open(key)) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{key} is larger than {limit} bytes")
    return data


def fetch_cache_dir(cache_mb: int) -> str | None:
    """Where an S3 store keeps the objects it fetches on this node (None: `cache_mb` is 0)."""
    return str(paths.cache() / "media") if cache_mb else None


def open_store(overrides: Mapping[str, Any] | None = None) -> LocalStore | S3Store:
    """The media store the settings name now: ARCHIVE_INBOX, a folder or s3://bucket/prefix
    (`media_store` fields in `overrides` first); an S3 store reads with boto3's credentials."""
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.core.s3_store import S3Store

    v = settings.resolve("media_store", overrides)
    parsed = urlparse(v.location)
    if parsed.scheme == "s3":
        return S3Store(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint_url=v.s3_endpoint_url,
            region_name=v.s3_region,
            cache_dir=fetch_cache_dir(v.fetch_cache_mb),
            cache_max_mb=v.fetch_cache_mb,
        )
    return LocalStore(root=v.location)
