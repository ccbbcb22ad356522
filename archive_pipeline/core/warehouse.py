"""The Lance warehouse: one table per asset, replaced one partition scope at a time (DESIGN §4).

- A scope's rows (a decade, or a decade and stage) are replaced in one atomic commit with
  `merge_insert(...).when_not_matched_by_source_delete(<scope>)`: readers see old or new rows.
- Writers of different scopes can commit concurrently; Lance rebases and retries conflicting
  commits, and a bounded retry here covers the rest.
- Writing rows identical to what is stored commits nothing (idempotent re-materialisation).
- After a write, small fragments are compacted and versions older than the retention are removed.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import lancedb
import pyarrow as pa
from lancedb.index import Bitmap

from archive_pipeline.core.ids import row_id  # noqa: F401  (re-exported)
from archive_pipeline.schemas import TABLES, TableSpec

log = logging.getLogger(__name__)
# subprocess (ffprobe, Ray's daemons) forks and execs at once, so no Lance state is used in the
# child; the warnings lance/lancedb raise for any fork are noise there.
warnings.filterwarnings("ignore", message="lancedb fork support is experimental")
warnings.filterwarnings("ignore", message="lance is not fork-safe")


class SchemaMismatchError(RuntimeError):
    """A table on disk does not match the schema contract in `archive_pipeline.schemas`."""


def sql_literal(value: str) -> str:
    """Quote a string for a Lance SQL filter."""
    return "'" + value.replace("'", "''") + "'"


def scope_filter(scope: Mapping[str, str]) -> str:
    """Build `col = 'value' AND ...` for a partition scope."""
    return " AND ".join(f"{name} = {sql_literal(value)}" for name, value in scope.items())


@dataclass(frozen=True)
class WriteResult:
    """What one scope replacement did."""

    table: str
    scope: dict[str, str]
    committed: bool
    version: int
    rows: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    attempts: int = 1


@dataclass(frozen=True)
class MaintenanceResult:
    """Versions before and after compaction and cleanup of one table."""

    table: str
    versions_before: int
    versions_after: int
    fragments_before: int
    fragments_after: int


def _same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    return [(f.name, f.type) for f in a] == [(f.name, f.type) for f in b]


class Warehouse:
    """A folder (or s3:// prefix) of Lance tables written with the DESIGN §4 semantics."""

    def __init__(
        self,
        root: str,
        *,
        storage_options: Mapping[str, str] | None = None,
        version_retention: dt.timedelta = dt.timedelta(hours=1),
        compact_min_small_fragments: int = 8,
        commit_retries: int = 8,
    ) -> None:
        self.root = root
        self.storage_options = dict(storage_options or {})
        self.version_retention = version_retention
        self.compact_min_small_fragments = compact_min_small_fragments
        self.commit_retries = commit_retries

    @cached_property
    def db(self) -> lancedb.DBConnection:
        """The LanceDB connection (opened lazily)."""
        return lancedb.connect(self.root, storage_options=self.storage_options or None)

    def table_names(self) -> list[str]:
        """Names of the tables that exist in the warehouse."""
        return sorted(self.db.table_names())

    def table(self, name: str) -> lancedb.table.Table:
        """Open a contract table, creating it empty if it does not exist yet."""
        spec = TABLES[name]
        try:
            table = self.db.open_table(name)
        except (ValueError, FileNotFoundError):
            table = self.db.create_table(name, schema=spec.schema, exist_ok=True)
        if not _same_columns(table.schema, spec.schema):
            raise SchemaMismatchError(
                f"table {name!r} at {self.root} has columns {table.schema.names} but the contract "
                f"({'archive_pipeline.schemas'}) says {spec.schema.names}; migrate or drop it"
            )
        return table

    def read(self, name: str, scope: Mapping[str, str] | None = None) -> pa.Table:
        """Read a table's rows, optionally only one scope (e.g. {'decade': '1980s'})."""
        table = self.table(name)
        dataset = table.to_lance()
        rows = dataset.to_table(filter=scope_filter(scope) if scope else None)
        return rows.cast(TABLES[name].schema)

    def _conform(self, spec: TableSpec, rows: pa.Table | list[dict], scope: Mapping[str, str]):
        if isinstance(rows, list):
            rows = pa.Table.from_pylist(rows, schema=spec.schema)
        rows = rows.select(spec.schema.names).cast(spec.schema)
        if set(scope) != set(spec.partition_scope):
            raise ValueError(
                f"{spec.name} is replaced per {spec.partition_scope}, not {tuple(scope)}"
            )
        for column, value in scope.items():
            values = set(rows.column(column).to_pylist())
            if values - {value}:
                raise ValueError(
                    f"rows for {spec.name} scope {dict(scope)} contain {column}={values}"
                )
        ids = rows.column("row_id").to_pylist()
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate row_id in rows for {spec.name} {dict(scope)}")
        return rows.sort_by("row_id")

    def replace(
        self, name: str, rows: pa.Table | list[dict], *, scope: Mapping[str, str]
    ) -> WriteResult:
        """Atomically replace one scope's rows with `rows` (no commit when nothing changed).

        `row_id` is unique in the whole table: a row whose id exists in another scope is moved
        here (an item whose decade changed), not duplicated.
        """
        spec = TABLES[name]
        rows = self._conform(spec, rows, scope)
        scope = dict(scope)
        for attempt in range(1, self.commit_retries + 1):
            table = self.table(name)
            current = self.read(name, scope).sort_by("row_id")
            if current.equals(rows):
                return WriteResult(name, scope, False, table.version, rows.num_rows)
            try:
                if rows.num_rows == 0:
                    table.delete(scope_filter(scope))
                    result = WriteResult(
                        name,
                        scope,
                        True,
                        table.version,
                        0,
                        deleted=current.num_rows,
                        attempts=attempt,
                    )
                else:
                    merged = (
                        table.merge_insert("row_id")
                        .when_matched_update_all()
                        .when_not_matched_insert_all()
                        .when_not_matched_by_source_delete(scope_filter(scope))
                        .execute(rows)
                    )
                    result = WriteResult(
                        name,
                        scope,
                        True,
                        merged.version,
                        rows.num_rows,
                        inserted=merged.num_inserted_rows,
                        updated=merged.num_updated_rows,
                        deleted=merged.num_deleted_rows,
                        attempts=attempt,
                    )
            except (OSError, RuntimeError) as exc:
                if attempt == self.commit_retries or not _retryable(exc):
                    raise
                delay = min(5.0, 0.1 * 2**attempt) * (0.5 + random.random())
                log.warning("commit to %s %s failed (%s); retry in %.1fs", name, scope, exc, delay)
                time.sleep(delay)
                continue
            self._after_write(table)
            return result
        raise AssertionError("unreachable")

    def _after_write(self, table: lancedb.table.Table) -> None:
        if not any(ix.columns == ["decade"] for ix in table.list_indices()):
            try:
                table.create_index("decade", config=Bitmap(), replace=False)
            except (OSError, RuntimeError, ValueError) as exc:  # a concurrent writer made it
                log.info("decade index on %s not created: %s", table.name, exc)
        stats = table.stats()
        if stats["fragment_stats"]["num_small_fragments"] >= self.compact_min_small_fragments:
            self.maintain(table.name)

    def maintain(self, name: str, *, retention: dt.timedelta | None = None) -> MaintenanceResult:
        """Compact small fragments, update indices and remove versions older than the retention."""
        table = self.table(name)
        versions_before = len(table.list_versions())
        fragments_before = table.stats()["fragment_stats"]["num_fragments"]
        keep = self.version_retention if retention is None else retention
        with warnings.catch_warnings():
            # A zero window is asked for only by a sole writer (the demo); Lance warns anyway.
            warnings.filterwarnings("ignore", message=".*removes every version except the latest")
            table.optimize(cleanup_older_than=keep)
        table.checkout_latest()
        return MaintenanceResult(
            name,
            versions_before,
            len(table.list_versions()),
            fragments_before,
            table.stats()["fragment_stats"]["num_fragments"],
        )

    def maintain_all(self, *, retention: dt.timedelta | None = None) -> list[MaintenanceResult]:
        """Run `maintain` on every contract table that exists."""
        names = [n for n in self.table_names() if n in TABLES]
        return [self.maintain(name, retention=retention) for name in names]


def _retryable(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("conflict", "retryable", "concurrent", "commit"))
