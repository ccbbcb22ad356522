"""The stage contract: what a Dagster-free stage declares and returns, and the item types
every stage shares.

A stage (`PartitionStage`) names the tables it writes, its cache identity (model id,
result-changing params, code version, an item's content id), its resources, and turns one
item's result into rows; `setup()`/`process()` run on a Ray worker (or inline). Optional
capabilities are declared on `BaseStage`: `ref` (how an item is named, default `item.ref`)
and `rebuilds_from_rows` with `value_from_rows` (the result rebuilt from rows done under
another URI, so a moved or copied file is not computed again). `stages/partition.py` runs a
stage over a decade.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import pyarrow as pa

from archive_pipeline import PIPELINE_VERSION
from archive_pipeline.contract.schemas import COMMON_COLUMNS
from archive_pipeline.core.cache import cache_key, canonical_json
from archive_pipeline.core.compute import ItemOutcome, Stage

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


@dataclass(frozen=True)
class ItemFailure:
    """A stage's own verdict that an item cannot be processed (errors as data)."""

    error_class: str
    message: str
    media_id: str | None = None


# Reads one of the decade's tables: read(table, columns=None) -> its rows in the decade.
Reader = Callable[..., pa.Table]
Skipped = list[tuple[str, str]]  # (store_key, reason)


class BaseStage:
    """A stage's declared inputs and optional capabilities (defaults: items name themselves,
    the result cannot be rebuilt from rows)."""

    rebuilds_from_rows: ClassVar[bool] = False

    @classmethod
    def select(cls, read: Reader) -> tuple[list[Any], Skipped]:
        """The decade's items of this stage, read from its input tables, and (store_key,
        reason) of those left out; the asset runs these and its checks expect their rows."""
        raise NotImplementedError(f"{cls.__name__} does not declare its items")

    def ref(self, item: Any) -> ItemRef:
        """How the item is named in failures and the ledger."""
        return item.ref

    def value_from_rows(self, rows: dict[str, pa.Table], item: Any) -> Any:
        """The result `process()` gave for an item, rebuilt from its rows per table (only
        where `rebuilds_from_rows`)."""
        raise NotImplementedError(f"{type(self).__name__} does not rebuild results from rows")


class LoadsModels(BaseStage):
    """Base of stages that load models in setup(): pickling (to ship the stage to Ray
    workers) drops the loaded objects, so each worker loads its own."""

    _loaded: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self._loaded:
            state[name] = None
        return state


@dataclass(frozen=True)
class ItemRef:
    """How a stage's item is named in the failures table and the ledger."""

    uri: str
    store_key: str | None
    media_id: str | None
    duration_s: float | None = None


@dataclass(frozen=True)
class CatalogItem:
    """A catalogued media item as the model stages see it (one per content in a decade)."""

    uri: str
    store_key: str
    media_id: str
    sha256: str
    duration_s: float | None
    language: str | None = None
    speakers: tuple[str, ...] = ()
    kind: str = "video"  # 'audio', 'video' or 'image' (a still: photo, scan, multi-page TIFF)

    @property
    def ref(self) -> ItemRef:
        """How the item is named in failures and the ledger."""
        return ItemRef(self.uri, self.store_key, self.media_id, self.duration_s)


def catalog_items(catalog: pa.Table, *, needs: str) -> tuple[list[CatalogItem], Skipped]:
    """The decade's items a stage can use, one per content, and (store_key, reason) of every
    other item: `needs` 'audio' (an audio stream) or 'visual' (a video stream or a still)."""
    if needs not in ("audio", "visual"):
        raise ValueError(f"needs must be 'audio' or 'visual', not {needs!r}")
    items: dict[str, CatalogItem] = {}
    skipped = []
    for row in sorted(catalog.to_pylist(), key=lambda r: r["store_key"]):
        if needs == "audio" and row["kind"] == "image":
            skipped.append((row["store_key"], "still image: no audio"))
            continue
        if needs == "audio" and not row["n_audio_streams"]:
            skipped.append((row["store_key"], "video without an audio stream"))
            continue
        if needs == "visual" and row["kind"] not in ("video", "image"):
            skipped.append((row["store_key"], "audio only: no video stream"))
            continue
        if row["media_id"] in items:
            skipped.append((row["store_key"], f"same content as {items[row['media_id']].uri}"))
            continue
        items[row["media_id"]] = CatalogItem(
            uri=row["uri"],
            store_key=row["store_key"],
            media_id=row["media_id"],
            sha256=row["sha256"],
            duration_s=row["duration_s"],
            language=row["language"] or None,
            speakers=tuple(row["speakers"] or ()),
            kind=row["kind"],
        )
    return list(items.values()), skipped


def common_values(stage: Any, *, decade: str, key: str, now: dt.datetime) -> dict[str, Any]:
    """The columns every table carries, for one item computed now by `stage`."""
    return {
        "decade": decade,
        "cache_key": key,
        "model_id": stage.model_id,
        "model_params": canonical_json(stage.params),
        "pipeline_version": PIPELINE_VERSION,
        "created_at": now,
    }


def stage_cache_key(stage: Any, content_id: str) -> str:
    """Cache key of one item's content for this stage configuration."""
    return cache_key(
        content_id=content_id,
        stage=stage.name,
        model_id=stage.model_id,
        params=stage.params,
        code_version=stage.code_version,
    )


# One item's result as rows: {table: rows}, each row the values of that table's Arrow schema in
# `schemas.TABLES` (checked when the batch is committed: a missing or mistyped column fails it).
TableRows = dict[str, list[dict[str, Any]]]


class PartitionStage(Stage, Protocol[T_contra]):
    """What `process_partition` needs of a stage: `setup()`/`process()` (`Stage`), the
    tables it writes, its cache identity (model id, result-changing params, code version, the
    item's content id), how an item's result becomes rows, and the capabilities of
    `BaseStage`."""

    tables: tuple[str, ...]
    model_id: str
    params: Any
    rebuilds_from_rows: bool

    def ref(self, item: T_contra) -> ItemRef:
        """How the item is named in failures and the ledger."""

    def value_from_rows(self, rows: dict[str, pa.Table], item: T_contra) -> Any:
        """The item's result rebuilt from its rows (where `rebuilds_from_rows`)."""

    def content_id(self, item: T_contra) -> str:
        """What the item's result depends on besides the stage configuration."""

    def rows(self, item: T_contra, value: Any, *, decade: str) -> TableRows:
        """{table: rows} of one item's result."""


def outcome_error(outcome: ItemOutcome) -> tuple[str, str] | None:
    """(error class, message) of a failed item, whether the stage returned an ItemFailure or
    raised; None when it succeeded."""
    if isinstance(outcome.value, ItemFailure):
        return outcome.value.error_class, outcome.value.message
    if not outcome.ok:
        return outcome.error_class or "Error", outcome.message or ""
    return None


def row_values(rows: pa.Table, order: str) -> list[dict[str, Any]]:
    """One item's rows of a table back as the values `rows()` built them from (for a stage's
    `value_from_rows`): sorted by the `order` column, without it and the identity and common
    columns (row_id, media_id, uri, decade, cache_key...)."""
    skip = {*IDENTITY_COLUMNS, order}
    listed = sorted(rows.to_pylist(), key=lambda row: row[order])
    return [{k: v for k, v in row.items() if k not in skip} for row in listed]


IDENTITY_COLUMNS = frozenset({*(f.name for f in COMMON_COLUMNS), "row_id", "media_id", "uri"})
