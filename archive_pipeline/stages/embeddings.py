"""The embedding stages (Dagster-free): keyframe images (`keyframe_embeddings`) and speech
segments and keyframe documents (`segment_embeddings`), with the models of
`core/embedders.py`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.stages.base import ItemRef, LoadsModels, Reader, Skipped, TableRows

if TYPE_CHECKING:
    import pyarrow as pa


from archive_pipeline.core.embedders import (
    ClipSettings,
    ImageEmbedder,
    TextEmbedder,
    text_model_id,
)


@dataclass(frozen=True)
class EmbedItem:
    """One media item's things to embed: ids, payloads (texts or image bytes) and row fields."""

    uri: str
    media_id: str
    entries: tuple[dict[str, Any], ...]  # each has 'payload' plus the row's own columns
    content_id: str  # hash of the payloads: changed text or frames recompute

    @property
    def ref(self) -> ItemRef:
        """How the item is named in failures and the ledger."""
        return ItemRef(self.uri, None, self.media_id)


@dataclass(frozen=True)
class Vectors:
    """One item's vectors, one per entry in the item's order (lists of floats)."""

    vectors: list[list[float]]


def content_hash(payloads: list[str | bytes]) -> str:
    """Stable hash of what an item embeds."""
    digest = hashlib.sha256()
    for payload in payloads:
        data = payload.encode() if isinstance(payload, str) else payload
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class _EmbedStage(LoadsModels):
    default_resources = StageResources(num_cpus=1)
    _loaded = ("_embedder",)

    def __init__(self, clip: ClipSettings, *, resources: StageResources | None = None) -> None:
        self.clip = clip
        self.resources = resources or self.default_resources
        self.params: dict[str, Any] = {}
        self._embedder = None

    def content_id(self, item: EmbedItem) -> str:
        """Hash of what the item embeds."""
        return item.content_id

    def rows(self, item: EmbedItem, value: Vectors, *, decade: str) -> TableRows:
        """One row per embedded entry."""
        table = self.tables[0]
        return {table: embedding_rows(table, item, value, decade=decade)}

    def process(self, item: EmbedItem) -> Vectors:
        """Vectors for the item's entries, in order."""
        vectors = self._embedder.embed([entry["payload"] for entry in item.entries])
        return Vectors([vector.tolist() for vector in vectors])


class SegmentEmbeddingStage(_EmbedStage):
    """Text embeddings of speech segments and keyframe documents."""

    name = "segment_embeddings"
    tables = ("segment_embeddings",)
    code_version = "2"

    def __init__(self, clip: ClipSettings, *, resources: StageResources | None = None) -> None:
        super().__init__(clip, resources=resources)
        self.model_id = text_model_id(clip)

    def setup(self) -> None:
        """Load the text model once per worker."""
        self._embedder = TextEmbedder(self.clip, threads=int(self.resources.num_cpus))

    rebuilds_from_rows = True  # value_from_rows: content done under another URI is copied

    def value_from_rows(self, rows: dict[str, pa.Table], item: EmbedItem) -> Vectors:
        """The vectors of these rows in the item's order (the same texts embedded under another
        URI: a moved file's segments are not embedded again)."""
        stored = rows["segment_embeddings"]
        by_text = dict(
            zip(stored.column("text").to_pylist(), stored.column("vector").to_pylist(), strict=True)
        )
        return Vectors([by_text[entry["payload"]] for entry in item.entries])


class KeyframeEmbeddingStage(_EmbedStage):
    """Image embeddings of keyframe thumbnails (OpenCLIP only)."""

    name = "keyframe_embeddings"
    tables = ("keyframe_embeddings",)
    code_version = "1"

    @classmethod
    def select(cls, read: Reader) -> tuple[list[EmbedItem], Skipped]:
        """One item per video or still with keyframes: their thumbnails."""
        return keyframe_items(read("keyframes")), []

    def __init__(self, clip: ClipSettings, *, resources: StageResources | None = None) -> None:
        super().__init__(clip, resources=resources)
        self.model_id = clip.model_id

    def setup(self) -> None:
        """Load the OpenCLIP model once per worker."""
        self._embedder = ImageEmbedder(self.clip, threads=int(self.resources.num_cpus))


def _items(entries_by_media: dict[str, list[dict]]) -> list[EmbedItem]:
    items = []
    for media_id, entries in sorted(entries_by_media.items()):
        first = entries[0]
        items.append(
            EmbedItem(
                uri=first["uri"],
                media_id=media_id,
                entries=tuple(entries),
                content_id=content_hash([e["payload"] for e in entries]),
            )
        )
    return items


def segment_items(segments: pa.Table, keyframe_documents: list[dict]) -> list[EmbedItem]:
    """Per media: each diarised segment's text, and each keyframe document's text (on-screen
    text plus overlapping speech, from `archive_pipeline.search.documents`)."""
    by_media: dict[str, list[dict]] = {}
    for row in sorted(segments.to_pylist(), key=lambda r: (r["media_id"], r["segment_index"])):
        if not row["text"].strip():
            continue
        by_media.setdefault(row["media_id"], []).append(
            {
                "payload": row["text"].strip(),
                "uri": row["uri"],
                "source": "speech",
                "source_id": row["row_id"],
                "start_s": row["start_s"],
                "end_s": row["end_s"],
                "speaker": row["speaker_name"] or row["speaker"],
            }
        )
    for doc in keyframe_documents:
        if not doc["text"]:
            continue
        by_media.setdefault(doc["media_id"], []).append(
            {
                "payload": doc["text"],
                "uri": doc["uri"],
                "source": "keyframe",
                "source_id": doc["source_id"],
                "start_s": doc["start_s"],
                "end_s": doc["end_s"],
                "speaker": doc["speaker_name"] or doc["speaker"],
            }
        )
    return _items(by_media)


def keyframe_items(keyframes: pa.Table) -> list[EmbedItem]:
    """Per video: each keyframe's thumbnail."""
    by_media: dict[str, list[dict]] = {}
    columns = ["row_id", "media_id", "uri", "keyframe_index", "time_s", "thumbnail"]
    for row in sorted(
        keyframes.select(columns).to_pylist(), key=lambda r: (r["media_id"], r["keyframe_index"])
    ):
        by_media.setdefault(row["media_id"], []).append(
            {
                "payload": row["thumbnail"],
                "uri": row["uri"],
                "keyframe_id": row["row_id"],
                "keyframe_index": row["keyframe_index"],
                "time_s": row["time_s"],
            }
        )
    return _items(by_media)


def embedding_rows(table: str, item: EmbedItem, value: Vectors, *, decade: str):
    """One row per embedded entry (the entry's own columns, its vector and length)."""
    rows = []
    for entry, vector in zip(item.entries, value.vectors, strict=True):
        fields = {k: v for k, v in entry.items() if k != "payload"}
        source_id = fields.get("source_id") or fields["keyframe_id"]
        rows.append(
            {
                "row_id": row_id(table, decade, source_id),
                "media_id": item.media_id,
                **fields,
                **({"text": entry["payload"]} if table == "segment_embeddings" else {}),
                "dim": len(vector),
                "vector": vector,
            }
        )
    return rows
