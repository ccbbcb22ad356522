"""The store as an S3 prefix (boto3's credentials): listed, read by range, fetched into a bounded
per-node cache; read-only."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from archive_pipeline.core.media import is_media_key
from archive_pipeline.core.store import StoredObject, cache_entry


@dataclass(frozen=True)
class S3Store:
    """A bucket and prefix in S3 or an S3-compatible server (endpoint_url for MinIO, moto...)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region_name: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    # Objects fetched for the stages are kept here (per node, least recently used first out
    # past cache_max_mb), so the stages of a run download each object once; None: no cache.
    cache_dir: str | None = None
    cache_max_mb: int = 10_240
    _client: list = field(default_factory=list, compare=False, repr=False)

    @property
    def root_uri(self) -> str:
        """The store root as an s3:// URI."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def client(self):
        """A boto3 S3 client, created lazily (so the store pickles into Ray workers)."""
        if not self._client:
            import boto3
            from botocore.config import Config

            config = Config(retries={"max_attempts": 8, "mode": "adaptive"})
            self._client.append(
                boto3.client(
                    "s3",
                    endpoint_url=self.endpoint_url or None,
                    region_name=self.region_name or None,
                    aws_access_key_id=self.access_key_id or None,
                    aws_secret_access_key=self.secret_access_key or None,
                    config=config,
                )
            )
        return self._client[0]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_client")
        return state

    def __setstate__(self, state):
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_client", [])

    def _full(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def list_objects(self) -> Iterator[StoredObject]:
        """Yield every object under the prefix (paginated), sorted by key."""
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = self.prefix.strip("/")
        strip = len(prefix) + 1 if prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{prefix}/" if prefix else ""):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    if is_media_key(obj["Key"].rstrip("/")):  # a "folder" named like media
                        yield StoredObject(
                            key=obj["Key"][strip:].rstrip("/"),
                            size=0,
                            mtime=obj["LastModified"].timestamp(),
                            problem=("NotAFile", "a folder marker named like a media file"),
                        )
                    continue
                yield StoredObject(
                    key=obj["Key"][strip:],
                    size=int(obj["Size"]),
                    mtime=obj["LastModified"].timestamp(),
                    etag=str(obj.get("ETag", "")).strip('"') or None,
                )

    def stat(self, key: str) -> StoredObject:
        """Return size, LastModified and ETag of one object."""
        head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        return StoredObject(
            key=key,
            size=int(head["ContentLength"]),
            mtime=head["LastModified"].timestamp(),
            etag=str(head.get("ETag", "")).strip('"') or None,
        )

    def open(self, key: str) -> BinaryIO:
        """Return a streaming body for one object."""
        return self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]

    def read_range(self, key: str, start: int, end: int, chunk: int = 1 << 16) -> Iterator[bytes]:
        """Yield bytes start..end (inclusive) of an object (one ranged GET, streamed)."""
        body = self.client.get_object(
            Bucket=self.bucket, Key=self._full(key), Range=f"bytes={start}-{end}"
        )["Body"]

        def chunks() -> Iterator[bytes]:
            with contextlib.closing(body):
                yield from body.iter_chunks(chunk)

        return chunks()

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """Yield a local copy of the object: from the fetch cache when this version of it (its
        ETag) was fetched before, else downloaded (into the cache, or a temporary file that is
        removed afterwards when there is no cache)."""
        suffix = PurePosixPath(key).suffix
        cached = None
        if self.cache_dir:
            try:
                cached = self._cached(key, suffix)
            except OSError:  # e.g. no room or no permission on this node: fetch without it
                cached = None
        if cached is not None:
            yield cached
            return
        with tempfile.TemporaryDirectory(prefix="archive-s3-") as tmp:
            path = Path(tmp) / f"object{suffix}"
            self.client.download_file(self.bucket, self._full(key), str(path))
            yield path

    def _cached(self, key: str, suffix: str) -> Path:
        folder = Path(self.cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        etag = self.stat(key).etag or ""
        name = hashlib.sha256(f"{self.bucket}\n{self._full(key)}\n{etag}".encode()).hexdigest()
        path = folder / f"{name[:32]}{suffix}"
        if path.exists():
            os.utime(path)  # recently used: evicted last
            return path
        with cache_entry(path, self.cache_max_mb * 1024**2) as part:
            self.client.download_file(self.bucket, self._full(key), str(part))
        return path

    def clear_cache(self) -> None:
        """Remove this node's fetch cache (after a run)."""
        if self.cache_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def uri(self, key: str) -> str:
        """Return the s3:// URI of a key."""
        return f"s3://{self.bucket}/{self._full(key)}"

    def entry_uri(self, key: str) -> str:
        """The same as `uri` (S3 keys have no links)."""
        return self.uri(key)
