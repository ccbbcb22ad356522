"""The catalog stage: hash and probe one media object (Dagster-free, runs in Ray workers)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from archive_pipeline.core.compute import Compute, StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.inventory import MediaItem
from archive_pipeline.core.media import (
    EmptyFileError,
    MediaError,
    ProbeResult,
    ffprobe_binary,
    ffprobe_version,
    media_id_from_sha256,
    probe_file,
    sha256_stream,
)
from archive_pipeline.core.progress import ProgressLog
from archive_pipeline.core.store import Store
from archive_pipeline.stages.base import BaseStage, ItemFailure, ItemRef, TableRows
from archive_pipeline.stages.partition import PartitionReport, process_partition
from archive_pipeline.stages.writer import CommitPolicy

if TYPE_CHECKING:
    from archive_pipeline.core.guard import RemovalGuard
    from archive_pipeline.core.warehouse import Warehouse

TABLE = "media_catalog"


@dataclass(frozen=True)
class CatalogEntry:
    """One object's content identity (sha256 of its bytes, the media_id derived from it) and
    what ffprobe says of it."""

    sha256: str
    media_id: str
    probe: ProbeResult


class CatalogStage(BaseStage):
    """Streams a sha256 of the object and probes it with ffprobe (container and streams)."""

    name = "media_catalog"
    tables = (TABLE,)
    code_version = "1"
    default_resources = StageResources(num_cpus=1)

    def __init__(self, store: Store, *, resources: StageResources | None = None) -> None:
        self.store = store
        self.resources = resources or self.default_resources
        self.params: Mapping[str, Any] = {}
        self.model_id = f"ffprobe {ffprobe_version()}"

    def setup(self) -> None:
        """Check that ffprobe is installed (no model to load)."""
        ffprobe_binary()

    def process(self, item: MediaItem) -> CatalogEntry | ItemFailure:
        """Return the item's probe and hash columns, or an ItemFailure for unusable media."""
        if item.obj.problem is not None:  # not a readable file: never opened
            return ItemFailure(*item.obj.problem)
        if item.obj.size == 0:
            return ItemFailure(EmptyFileError.__name__, "file is empty (0 bytes)")
        with self.store.local_path(item.key) as path:
            with open(path, "rb") as stream:
                sha256 = sha256_stream(stream)
            media_id = media_id_from_sha256(sha256)
            try:
                probe = probe_file(path, extension_kind=item.extension_kind)
            except MediaError as exc:
                return ItemFailure(type(exc).__name__, str(exc), media_id)
        return CatalogEntry(sha256, media_id, probe)

    def content_id(self, item: MediaItem) -> str:
        """The object's state (etag/size/mtime) and metadata: unchanged objects are not re-read."""
        return item.state_digest

    def ref(self, item: MediaItem) -> ItemRef:
        """How the object is named in failures and the ledger (no media_id before hashing)."""
        return ItemRef(item.uri, item.key, None)

    def rows(self, item: MediaItem, value: CatalogEntry, *, decade: str) -> TableRows:
        """The item's media_catalog row."""
        return {TABLE: [catalog_row(item, value)]}


def catalog_row(item: MediaItem, value: CatalogEntry) -> dict[str, Any]:
    """Combine an item's store, decade and metadata columns with its probe result."""
    meta = item.metadata
    return {
        "row_id": row_id(item.uri),
        "uri": item.uri,
        "store_key": item.key,
        "size_bytes": item.obj.size,
        "modified_at": dt.datetime.fromtimestamp(item.obj.mtime, dt.UTC),
        "etag": item.obj.etag,
        "decade_rule": item.assignment.rule,
        "decade_evidence": item.assignment.evidence,
        "title": meta.title if meta else None,
        "recorded_date": meta.recorded_date if meta else None,
        "year": meta.year if meta else None,
        "language": meta.language if meta else None,
        "speakers": list(meta.speakers) if meta else None,
        "metadata_source": meta.source if meta else None,
        "metadata_json": meta.to_json() if meta else None,
        "metadata_warning": item.metadata_warning,
        "aliases": list(item.aliases) or None,
        "sha256": value.sha256,
        "media_id": value.media_id,
        **asdict(value.probe),
    }


def catalog_decade(
    *,
    decade: str,
    items: Sequence[MediaItem],
    store: Store,
    warehouse: Warehouse,
    compute: Compute,
    resources: StageResources | None = None,
    log: ProgressLog | None = None,
    removal_guard: RemovalGuard | None = None,
    writer: str | None = None,
    policy: CommitPolicy | None = None,
) -> PartitionReport[MediaItem]:
    """Catalogue one decade's items into `media_catalog` (unchanged items are not re-read);
    with `removal_guard`, a listing that lost too much of the decade removes nothing."""
    stage = CatalogStage(store, resources=resources)
    return process_partition(
        stage=stage,
        decade=decade,
        items=items,
        warehouse=warehouse,
        compute=compute,
        log=log,
        removal_guard=removal_guard,
        writer=writer,
        policy=policy,
    )
