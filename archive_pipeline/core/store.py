"""Read-only access to the archive's object store (a local folder or S3) and its inventory.

The pipeline never writes, moves or deletes anything in the store.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat as st_mode
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlparse

from archive_pipeline import paths, settings
from archive_pipeline.core import decades as dec
from archive_pipeline.core.errors import register_permanent
from archive_pipeline.core.media import is_media_key, kind_from_extension


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


def _problem(key: str, info: os.stat_result, error_class: str, message: str) -> StoredObject:
    return StoredObject(key, 0, info.st_mtime_ns / 1e9, problem=(error_class, message))


@dataclass(frozen=True)
class LocalStore:
    """A folder on a local or mounted filesystem."""

    root: str

    @property
    def root_uri(self) -> str:
        """The store root as a file:// URI."""
        return Path(self.root).resolve().as_uri()

    def _path(self, key: str) -> Path:
        path = (Path(self.root) / key).resolve()
        if not path.is_relative_to(Path(self.root).resolve()):
            raise ValueError(f"key {key!r} escapes the store root")
        return path

    def list_objects(self) -> Iterator[StoredObject]:
        """Yield every entry under the root, sorted by key: regular files (symbolic links to a
        file inside the store are followed), and, as a `problem`, whatever cannot be read as
        one (a link out of the store, a loop, a dangling link, a link to a folder, a folder or
        a FIFO named like media, an unreadable entry). Never opens an entry."""
        root = Path(self.root)
        if not root.is_dir():
            raise FileNotFoundError(f"inbox folder {root} does not exist")
        keys: list[str] = []
        problems: dict[str, tuple[str, str]] = {}

        def unreadable(exc: OSError) -> None:  # a folder os.walk could not list
            key = Path(exc.filename).relative_to(root).as_posix()
            problems[key] = ("UnreadableEntry", f"folder cannot be listed: {exc.strerror}")

        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
            rel = Path(dirpath).relative_to(root)
            kept = []
            for name in dirnames:
                if name.startswith("."):
                    continue
                if (Path(dirpath) / name).is_symlink():
                    keys.append((rel / name).as_posix())  # classified below; never walked
                    continue
                kept.append(name)
                if is_media_key(name):
                    problems[(rel / name).as_posix()] = (
                        "NotAFile",
                        "a folder named like a media file (its contents are listed as keys)",
                    )
            dirnames[:] = kept
            keys.extend((rel / name).as_posix() for name in filenames)
        for key in sorted([*keys, *problems]):
            if key in problems:
                yield StoredObject(key=key, size=0, mtime=0.0, problem=problems[key])
                continue
            try:
                yield self.stat(key)
            except FileNotFoundError:  # deleted while listing
                continue

    def stat(self, key: str) -> StoredObject:
        """Size and mtime of one entry, or what keeps it from being read as a file (`problem`)."""
        path = Path(self.root) / key
        own = path.lstat()
        target = None
        if st_mode.S_ISLNK(own.st_mode):
            try:
                info = path.stat()
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return _problem(key, own, "SymlinkLoop", "symbolic link loop")
                if exc.errno == errno.ENOENT:
                    link = os.readlink(path)
                    return _problem(
                        key, own, "DanglingLink", f"symbolic link to {link!r}, which does not exist"
                    )
                return _problem(
                    key, own, "UnreadableEntry", f"link cannot be followed: {exc.strerror}"
                )
            real = Path(os.path.realpath(path))
            real_root = Path(self.root).resolve()
            if not real.is_relative_to(real_root):
                return _problem(
                    key, own, "LinkOutsideStore", "symbolic link to a path outside the store"
                )
            target = real.relative_to(real_root).as_posix()
        else:
            info = own
        mode = info.st_mode
        if not st_mode.S_ISREG(mode):
            what = (
                "a folder"
                if st_mode.S_ISDIR(mode)
                else "a FIFO"
                if st_mode.S_ISFIFO(mode)
                else "a socket"
                if st_mode.S_ISSOCK(mode)
                else "a device"
                if st_mode.S_ISCHR(mode) or st_mode.S_ISBLK(mode)
                else "not a regular file"
            )
            error = "LinkedFolder" if target is not None and st_mode.S_ISDIR(mode) else "NotAFile"
            via = "symbolic link to " if target is not None else ""
            return _problem(key, own, error, f"{via}{what}, not a media file")
        if not os.access(path, os.R_OK):
            return _problem(key, own, "UnreadableEntry", "permission denied (not readable)")
        return StoredObject(key=key, size=info.st_size, mtime=info.st_mtime_ns / 1e9, target=target)

    def open(self, key: str) -> BinaryIO:
        """Open a file for reading (binary)."""
        return open(self._path(key), "rb")

    def read_range(self, key: str, start: int, end: int, chunk: int = 1 << 16) -> Iterator[bytes]:
        """Yield bytes start..end (inclusive) of a file, in chunks (the file is opened at once,
        so a missing file raises here)."""
        handle = self.open(key)

        def chunks() -> Iterator[bytes]:
            with handle:
                handle.seek(start)
                left = end - start + 1
                while left > 0 and (data := handle.read(min(chunk, left))):
                    left -= len(data)
                    yield data

        return chunks()

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """Yield the file's own path: no copy is needed for a local store."""
        yield self._path(key)

    def entry_uri(self, key: str) -> str:
        """The file:// URI of the entry itself (a link's own path, not its target)."""
        return (Path(self.root).resolve() / key).as_uri()

    def uri(self, key: str) -> str:
        """Return the file:// URI of a key (of the file a link inside the store points at; of
        the entry itself for a link that cannot be followed there)."""
        try:
            return self._path(key).as_uri()
        except (ValueError, RuntimeError, OSError):  # out of the store, a loop
            return (Path(self.root).resolve() / key).as_uri()


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


@dataclass(frozen=True)
class MediaItem:
    """A media object with its decade assignment and catalogue metadata (the unit of work)."""

    obj: StoredObject
    uri: str
    extension_kind: str
    assignment: dec.DecadeAssignment
    metadata: dec.CatalogueMetadata | None
    metadata_warning: str | None = None
    aliases: tuple[str, ...] = ()  # other keys of the same file (symbolic links to it)

    @property
    def key(self) -> str:
        """The object's key in the store."""
        return self.obj.key

    @property
    def decade(self) -> str:
        """The decade partition key this item belongs to."""
        return self.assignment.decade

    @property
    def state_digest(self) -> str:
        """A digest of everything that decides this item's catalogue row (object and metadata)."""
        meta = self.metadata.to_json() if self.metadata else ""
        text = "|".join(
            [
                self.key,
                self.obj.fingerprint,
                self.assignment.decade,
                self.assignment.rule,
                self.assignment.evidence,
                meta,
                self.metadata_warning or "",
                *self.aliases,
                *(self.obj.problem or ()),
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Inventory:
    """Every media item in the store, with warnings about unusable metadata."""

    items: list[MediaItem]
    warnings: list[str]

    def for_decade(self, decade: str) -> list[MediaItem]:
        """Return the items assigned to one decade partition."""
        return [item for item in self.items if item.decade == decade]

    def decade_digests(self) -> dict[str, str]:
        """Digest per decade (`items_digest` of its items); a decade without items has no
        entry (its digest is NO_MEDIA)."""
        by_decade: dict[str, list[MediaItem]] = {}
        for item in self.items:
            by_decade.setdefault(item.decade, []).append(item)
        return {decade: items_digest(items) for decade, items in sorted(by_decade.items())}


def items_digest(items: list[MediaItem]) -> str:
    """Digest over the items' keys, sizes, times, etags, decade rules and metadata: new,
    changed, moved or deleted items change it (sidecars and catalogue.csv count); NO_MEDIA
    for none."""
    if not items:
        return NO_MEDIA
    states = sorted(item.state_digest for item in items)
    return hashlib.sha256("\n".join(states).encode()).hexdigest()[:24]


NO_MEDIA = "no-media"  # the inbox digest of a decade without items


class SidecarCache:
    """Parsed sidecars and catalogue.csv keyed by (key, fingerprint), so unchanged files are
    read once per process instead of once per sensor tick or partition."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._entries: dict[tuple[str, str], object] = {}
        self._max = max_entries

    def get_or_load(self, obj: StoredObject, load):
        """Return the cached value for this object version, loading it on a miss."""
        key = (obj.key, obj.fingerprint)
        if key not in self._entries:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = load()
        return self._entries[key]


_DEFAULT_SIDECAR_CACHE = SidecarCache()


def scan_inventory(store: Store, *, cache: SidecarCache | None = None) -> Inventory:
    """List the store, pair media with sidecars and `catalogue.csv`, and assign every decade."""
    cache = cache or _DEFAULT_SIDECAR_CACHE
    objects = {obj.key: obj for obj in store.list_objects()}
    warnings: list[str] = []
    csv_rows: dict = {}
    csv_obj = objects.get(dec.CATALOGUE_CSV)
    if csv_obj is not None:
        csv_rows, csv_warnings = cache.get_or_load(
            csv_obj, lambda: dec.parse_catalogue_csv(read_bytes(store, dec.CATALOGUE_CSV))
        )
        warnings.extend(csv_warnings)
    aliases = _aliases(objects)
    skipped = {alias for keys in aliases.values() for alias in keys}
    items = []
    for key, obj in objects.items():
        linked_folder = obj.problem is not None and obj.problem[0] == "LinkedFolder"
        if not (is_media_key(key) or linked_folder) or key in skipped:
            continue  # (a link to a folder is reported: what is behind it is not catalogued)
        metadata, problems = None, []
        sidecar = objects.get(key + dec.SIDECAR_SUFFIX)
        if sidecar is not None:
            metadata, problem = cache.get_or_load(
                sidecar, lambda s=sidecar: _load_sidecar(store, s)
            )
            if problem:
                problems.append(f"sidecar {sidecar.key}: {problem}")
        if metadata is None and key in csv_rows:
            try:
                metadata = dec.parse_metadata(csv_rows[key], source=dec.RULE_CATALOGUE_CSV)
            except dec.MetadataError as exc:
                problems.append(f"{dec.CATALOGUE_CSV} row {key}: {exc}")
        assignment = dec.assign_decade(key, metadata)
        problems.extend(assignment.notes)  # e.g. a sidecar's year 3000, whichever rule decided
        warning = "; ".join(problems) or None
        if warning:
            warnings.append(warning)
        items.append(
            MediaItem(
                obj=obj,
                # an entry that is not a readable file (a link to a folder, a dangling link) is
                # named by its own path: two links to one place are two entries, two failures
                uri=store.uri(key) if obj.problem is None else store.entry_uri(key),
                extension_kind=kind_from_extension(key) or "",
                assignment=assignment,
                metadata=metadata,
                metadata_warning=warning,
                aliases=aliases.get(key, ()),
            )
        )
    missing = sorted(set(csv_rows) - set(objects))
    if missing:
        warnings.append(
            f"{dec.CATALOGUE_CSV} lists {len(missing)} paths not in the store: {missing[:5]}"
        )
    return Inventory(items=items, warnings=warnings)


def _aliases(objects: dict[str, StoredObject]) -> dict[str, tuple[str, ...]]:
    """{key: its aliases} for media files listed under several keys (symbolic links inside the
    store): the file's own key when it is listed, else the first key, is catalogued."""
    by_file: dict[str, list[str]] = {}
    for key, obj in objects.items():
        if obj.problem is None and is_media_key(key):
            by_file.setdefault(obj.target or key, []).append(key)
    found = {}
    for file, keys in by_file.items():
        if len(keys) > 1:
            first = file if file in keys else keys[0]
            found[first] = tuple(k for k in keys if k != first)
    return found


def _load_sidecar(
    store: Store, obj: StoredObject
) -> tuple[dec.CatalogueMetadata | None, str | None]:
    try:
        return dec.parse_sidecar(read_bytes(store, obj.key)), None
    except dec.MetadataError as exc:
        return None, str(exc)
    except ValueError as exc:
        return None, str(exc)


def fetch_cache_dir(cache_mb: int) -> str | None:
    """Where an S3 store keeps the objects it fetches on this node (None: `cache_mb` is 0)."""
    return str(paths.cache() / "media") if cache_mb else None


def open_store(overrides: Mapping[str, Any] | None = None) -> LocalStore | S3Store:
    """The media store the settings name now: ARCHIVE_INBOX, a folder or s3://bucket/prefix
    (`media_store` fields in `overrides` first); an S3 store reads with boto3's credentials."""
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
