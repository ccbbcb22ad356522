"""The Lance warehouse: one table per asset, replaced one partition scope at a time (DESIGN §4).

- A scope's rows (a decade, or a decade and stage) are replaced in one atomic commit with
  `merge_insert(...).when_not_matched_by_source_delete(<scope>)`: readers see old or new rows.
- Writers of different scopes can commit concurrently; Lance rebases and retries conflicting
  commits, and a bounded retry here covers the rest.
- Writing rows identical to what is stored commits nothing (idempotent re-materialisation).
- After a write, small fragments are compacted and versions older than the retention are removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc

from archive_pipeline.config import settings
from archive_pipeline.contract.schemas import TABLES, TableSpec
from archive_pipeline.core import lease as leases
from archive_pipeline.core.ids import row_id  # noqa: F401  (re-exported)
from archive_pipeline.core.sql import scope_filter, sql_in, sql_literal  # noqa: F401

if TYPE_CHECKING:  # lancedb is imported on the first connection: loading the Dagster code
    import lancedb  # location (code servers, sensors, every run worker) saves its 3 s import

log = logging.getLogger(__name__)


class WarehouseMissingError(LookupError):
    """A read-only command found no warehouse (or no tables) where it looked."""


class DamagedTableError(Exception):
    """A table cannot be read (a data file or version lost or truncated): the message names it
    and the repair command. Not an OSError, so a commit never retries it."""

    def __init__(self, message: str, *, table: str) -> None:
        super().__init__(message)
        self.table = table


# (table URI, version) whose data files this process found whole: a version's files are fixed,
# so a run checks each version once (a file lost later is found by the next process)
_VERIFIED: set[tuple[str, int]] = set()


def is_damage(exc: BaseException) -> bool:
    """Whether an error reading a Lance table says its files are missing or unreadable."""
    text = str(exc)
    return any(w in text for w in ("LanceError(IO)", "Not found:", "LanceError(Corrupt", "corrupt"))


def damage_in(exc: BaseException, warehouse: Warehouse) -> DamagedTableError | None:
    """The DamagedTableError an error from reading the warehouse with lancedb directly stands
    for, or None when it is no damage. The table is the one the error's path names, else the
    one whose data files do not match its manifest (`Warehouse.verify`), else unnamed."""
    if isinstance(exc, DamagedTableError):
        return exc
    if not is_damage(exc):
        return None
    found = re.search(r"([A-Za-z_]+)\.lance/", str(exc))
    if found:
        return warehouse.damaged(found.group(1), exc)
    for name in warehouse.table_names():  # (a truncated file's error names no path)
        if name in TABLES:
            try:
                warehouse.verify(name)
            except DamagedTableError as damage:
                return damage
    return warehouse.damaged(None, exc)


class SchemaMismatchError(RuntimeError):
    """A table on disk does not match the schema contract in `archive_pipeline.contract.schemas`."""


class VectorDimensionError(SchemaMismatchError):
    """Rows carry vectors of another length than the table holds (the model changed)."""


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

    def then(self, later: WriteResult) -> WriteResult:
        """This write followed by a later one of the same table: the later version and row
        count (unless it committed nothing), the counts summed."""
        return replace(
            later,
            committed=self.committed or later.committed,
            version=later.version if later.committed else self.version,
            rows=later.rows if later.committed else self.rows,
            inserted=self.inserted + later.inserted,
            updated=self.updated + later.updated,
            deleted=self.deleted + later.deleted,
            attempts=max(self.attempts, later.attempts),
        )


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


def _columns_added_since(stored: pa.Schema, contract: pa.Schema) -> list[pa.Field]:
    """The contract's columns after the stored ones, when the stored table has the contract's
    first columns and those added since are nullable (a table written before they existed)."""
    n = len(stored)
    new = list(contract)[n:]
    if not new or not _same_columns(stored, pa.schema(list(contract)[:n])):
        return []
    return new if all(field.nullable for field in new) else []


def vector_dim(spec: TableSpec, schema: pa.Schema) -> int | None:
    """Length of a table's fixed-size vector columns (None: it has none)."""
    for name in spec.vector_columns:
        field_type = schema.field(name).type
        if pa.types.is_fixed_size_list(field_type):
            return field_type.list_size
    return None


COMPACT_MIN_SMALL_FRAGMENTS = 8  # a table is compacted once it has this many small fragments


class Warehouse:
    """A folder (or s3:// prefix) of Lance tables written with the DESIGN §4 semantics."""

    @classmethod
    def from_settings(
        cls, overrides: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> Warehouse:
        """The warehouse the settings name now (ARCHIVE_WAREHOUSE…), fields in `overrides` first."""
        v = settings.resolve("warehouse", overrides)
        options = {}
        if v.s3_endpoint_url:
            options["aws_endpoint"] = v.s3_endpoint_url
            if v.s3_endpoint_url.startswith("http://"):
                options["allow_http"] = "true"  # a plain-HTTP endpoint (MinIO, moto in tests)
        if v.s3_region:
            options["aws_region"] = v.s3_region
        return cls(
            v.root,
            storage_options=options,
            version_retention=dt.timedelta(minutes=v.version_retention_minutes),
            writer_wait_s=v.writer_wait_s,
            writer_lease_s=v.writer_lease_s,
            read_only=read_only,
        )

    def __init__(
        self,
        root: str,
        *,
        storage_options: Mapping[str, str] | None = None,
        version_retention: dt.timedelta = dt.timedelta(
            minutes=settings.VERSION_RETENTION_MINUTES.default
        ),
        compact_min_small_fragments: int = COMPACT_MIN_SMALL_FRAGMENTS,
        commit_retries: int = 8,
        writer_wait_s: float = settings.WRITER_WAIT_S.default,
        writer_lease_s: float = settings.WRITER_LEASE_S.default,
        read_only: bool = False,
    ) -> None:
        self.root = root
        # Read-only (search, export, summary): nothing is created; a missing table reads empty.
        self.read_only = read_only
        self.storage_options = dict(storage_options or {})
        self.version_retention = version_retention
        self.compact_min_small_fragments = compact_min_small_fragments
        self.commit_retries = commit_retries
        self.writer_wait_s = writer_wait_s
        self.writer_lease_s = writer_lease_s
        self._leases: list[leases.Lease] = []  # held by this writer now (checked per commit)

    @cached_property
    def lease_store(self):
        """Where this warehouse's write leases live (beside the tables; None: no guard)."""
        backend = leases.leases_for(
            self.root, ttl_s=self.writer_lease_s, client_options=self._s3_options()
        )
        if backend is None:
            log.warning("no write leases for %s (folders and s3:// only): unguarded", self.root)
        return backend

    def read_note(self, name: str) -> dict | None:
        """A JSON document kept beside the tables (e.g. 'inbox': the inbox it mirrors)."""
        return self.lease_store.read_note(name) if self.lease_store is not None else None

    def write_note(self, name: str, value: dict) -> None:
        """Keep a JSON document beside the tables."""
        if self.lease_store is not None and not self.read_only:
            self.lease_store.write_note(name, value)

    @contextlib.contextmanager
    def writer(
        self, decade: str, table: str, *, what: str, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[None]:
        """Be the only writer of one (decade, table) scope while the block runs: wait up to
        `writer_wait_s` for another holder, then WriterBusyError naming it (DESIGN §9a)."""
        with leases.hold(
            self.lease_store,
            f"{decade}.{table}",
            what=what,
            wait_s=self.writer_wait_s,
            where=self.root,
            on_wait=on_wait,
        ) as held:
            if held is not None:
                self._leases.append(held)
            try:
                yield
            finally:
                if held is not None:
                    self._leases.remove(held)

    @cached_property
    def db(self) -> lancedb.DBConnection:
        """The LanceDB connection (opened lazily; it creates a local folder that is missing)."""
        import lancedb

        if self.read_only:
            self._require_folder()
        return lancedb.connect(self.root, storage_options=self.storage_options or None)

    @property
    def local_root(self) -> Path | None:
        """The warehouse's folder when it is local (a path or file://); None for s3:// etc."""
        if "://" in self.root and not self.root.startswith("file://"):
            return None
        return Path(self.root.removeprefix("file://"))

    def _require_folder(self) -> None:
        """WarehouseMissingError when the warehouse is a local folder that does not exist."""
        if self.local_root is not None and not self.local_root.is_dir():
            raise WarehouseMissingError(self._missing(f"no warehouse at {self.root}"))

    def damaged(self, name: str | None, exc: BaseException) -> DamagedTableError:
        """The error that names a table that cannot be read (None: one the error does not
        name) and how to repair it."""
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        which = f"table {name!r}" if name else "a table"
        repair = f"archive-pipeline repair --table {name}" if name else "archive-pipeline repair"
        return DamagedTableError(
            f"{which} of the warehouse at {self.root} cannot be read "
            f"({type(exc).__name__}: {first}). Run `{repair}`: it "
            "removes what cannot be read and rebuilds the lost rows from the ledger's inputs "
            "(README: 'When a table is damaged')",
            table=name or "",
        )

    @contextlib.contextmanager
    def _reading(self, name: str) -> Iterator[None]:
        """Reading a table: a Lance error that says its files are lost is DamagedTableError."""
        try:
            yield
        except (OSError, RuntimeError, ValueError) as exc:
            if is_damage(exc):
                raise self.damaged(name, exc) from exc
            raise

    def verify(self, name: str) -> None:
        """DamagedTableError if a data file of the table's current version is missing or not the
        size its manifest recorded (a lost or truncated file). Costs a listing of the table's
        data folder: the fragments, not the rows. A table not written yet passes."""
        try:
            dataset = self._open(name).to_lance()
        except (ValueError, FileNotFoundError):  # not written yet
            return
        seen = (self.uri(name), dataset.version)
        if seen in _VERIFIED:  # this version's files were checked by this process
            return
        expected = {
            data.path: data.file_size_bytes
            for fragment in dataset.get_fragments()
            for data in fragment.data_files()
        }
        present = self._data_file_sizes(name)
        if present is None or not expected:
            return
        bad = [
            f"{path} ({'missing' if path not in present else f'{present[path]} of {size} bytes'})"
            for path, size in sorted(expected.items())
            if path not in present or (size and present[path] != size)
        ]
        if bad:
            problem = OSError(
                f"{len(bad)} of {len(expected)} data files lost or truncated: {', '.join(bad[:3])}"
            )
            raise self.damaged(name, problem)
        if len(_VERIFIED) > 10_000:
            _VERIFIED.clear()
        _VERIFIED.add(seen)

    def _data_file_sizes(self, name: str) -> dict[str, int] | None:
        """{data file name: size} of a table's data folder (None: a scheme not listed here)."""
        if self.local_root is not None:
            folder = self.local_root / f"{name}.lance" / "data"
            if not folder.is_dir():
                return {}
            return {entry.name: entry.stat().st_size for entry in os.scandir(folder)}
        parsed = urlparse(self.uri(name))
        if parsed.scheme != "s3":
            return None
        from archive_pipeline.core.lease import s3_client

        client = s3_client(self._s3_options())
        prefix = parsed.path.strip("/") + "/data/"
        sizes = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=parsed.netloc, Prefix=prefix
        ):
            for obj in page.get("Contents", []):
                sizes[obj["Key"][len(prefix) :]] = obj["Size"]
        return sizes

    def _s3_options(self) -> dict[str, str]:
        options = {}
        if self.storage_options.get("aws_endpoint"):
            options["endpoint_url"] = self.storage_options["aws_endpoint"]
        if self.storage_options.get("aws_region"):
            options["region_name"] = self.storage_options["aws_region"]
        return options

    def _missing(self, what: str) -> str:
        return (
            f"{what}: nothing has been catalogued there yet. Run `make demo` or "
            "`archive-pipeline run` first (ARCHIVE_WAREHOUSE or ARCHIVE_HOME say where it is)"
        )

    def require(self) -> Warehouse:
        """This warehouse, if it holds contract tables; else WarehouseMissingError naming it
        (and creating nothing)."""
        self._require_folder()
        if not any(name in TABLES for name in self.table_names()):
            raise WarehouseMissingError(self._missing(f"the warehouse at {self.root} is empty"))
        return self

    def uri(self, name: str) -> str:
        """Where a table's Lance dataset lives (a path, or an s3:// URI)."""
        return f"{self.root.rstrip('/')}/{name}.lance"

    def table_names(self) -> list[str]:
        """Names of the tables that exist in the warehouse."""
        names, token = [], None
        while True:  # paged (table_names() is deprecated)
            response = self.db.list_tables(page_token=token)
            names += response.tables
            token = response.page_token
            if not token:
                return sorted(names)

    def table(self, name: str, *, dim: int | None = None) -> lancedb.table.Table:
        """Open a contract table, creating it empty if it does not exist yet. A table with vector
        columns is created with `dim`-long vectors; opened with `dim`, its length must match."""
        spec = TABLES[name]
        try:
            table = self._open(name)
        except (ValueError, FileNotFoundError):
            if self.read_only:
                raise WarehouseMissingError(
                    self._missing(f"no table {name!r} in the warehouse at {self.root}")
                ) from None
            if spec.vector_columns and dim is None:
                raise ValueError(
                    f"no table {name!r} at {self.root} yet (creating it needs the vector length)"
                ) from None
            table = self.db.create_table(name, schema=spec.schema_for(dim), exist_ok=True)
        stored = vector_dim(spec, table.schema)
        contract = spec.schema_for(stored)
        # A table older than columns the contract gained: they are added (read-only: read
        # as nulls); any other difference is an error.
        new = _columns_added_since(table.schema, contract)
        if new and not self.read_only:
            table = self._add_columns(table, new)
        elif not new and not _same_columns(table.schema, contract):
            raise SchemaMismatchError(
                f"table {name!r} at {self.root} has columns {table.schema.names} but the contract "
                "(archive_pipeline.contract.schemas) says "
                f"{spec.schema.names}; migrate or drop it"
            )
        if dim is not None and stored is not None and dim != stored:
            raise VectorDimensionError(
                f"table {name!r} at {self.root} holds {stored}-d vectors but these rows have "
                f"{dim}-d ones: the embedding model changed, and one table holds one vector "
                f"length. The table is derived data: drop it (lancedb.connect(root).drop_table("
                f"{name!r})) and re-materialise every decade, or write to a new warehouse"
            )
        return table

    def _open(self, name: str) -> lancedb.table.Table:
        """Open a table; ValueError/FileNotFoundError when it does not exist, DamagedTableError
        when it exists and cannot be opened (tried twice: a concurrent creator may be midway)."""
        for attempt in (1, 2):
            try:
                return self.db.open_table(name)
            except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
                if not (is_damage(exc) or self._exists_on_disk(name)):
                    raise ValueError(str(exc)) from exc
                if attempt == 2:
                    raise self.damaged(name, exc) from exc
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _exists_on_disk(self, name: str) -> bool:
        """A local table folder with versions: it exists, so failing to open it is damage."""
        if self.local_root is None:
            return False
        return (self.local_root / f"{name}.lance" / "_versions").is_dir()

    def _add_columns(self, table: lancedb.table.Table, new: list[pa.Field]):
        """Add (empty) the contract columns a table written before lacks: the one migration
        done on open."""
        try:
            table.add_columns(new)
        except (OSError, RuntimeError, ValueError) as exc:  # a concurrent opener added them
            log.info("columns %s not added to %s: %s", [f.name for f in new], table.name, exc)
        return self.db.open_table(table.name)

    def read(
        self,
        name: str,
        scope: Mapping[str, str] | None = None,
        *,
        columns: list[str] | None = None,
        filter: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Read a table's rows, optionally only one scope (e.g. {'decade': '1980s'}), rows
        matching a SQL `filter`, some columns, the first `limit` rows."""
        spec = TABLES[name]
        try:
            table = self.table(name)
        except WarehouseMissingError:
            if not self.read_only:
                raise
            empty = spec.schema.empty_table()  # read-only: a table not written yet is empty
            return empty.select(columns) if columns is not None else empty
        schema = spec.schema_for(vector_dim(spec, table.schema))
        stored = set(table.schema.names)
        wanted = [c for c in (columns or schema.names) if c in stored]
        where = " AND ".join(f"({w})" for w in (scope and scope_filter(scope), filter) if w)
        with self._reading(name):
            rows = table.to_lance().to_table(columns=wanted, filter=where or None, limit=limit)
        for name_ in columns or schema.names:  # (read-only on an older table: nulls)
            if name_ not in stored:
                field = schema.field(name_)
                rows = rows.append_column(field, pa.nulls(rows.num_rows, field.type))
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        return rows.select(schema.names).cast(schema)

    def count(
        self, name: str, scope: Mapping[str, str] | None = None, *, filter: str | None = None
    ) -> int:
        """Rows of a table, or of one scope of it, optionally only those matching `filter`."""
        try:
            table = self.table(name)
        except WarehouseMissingError:
            if not self.read_only:
                raise
            return 0
        where = " AND ".join(f"({w})" for w in (scope and scope_filter(scope), filter) if w)
        with self._reading(name):
            return table.count_rows(where or None)

    def _conform(
        self,
        spec: TableSpec,
        rows: pa.Table | list[dict],
        scope: Mapping[str, str],
        dim: int | None,
    ):
        schema = spec.schema_for(dim)
        if isinstance(rows, list):
            rows = pa.Table.from_pylist(rows, schema=schema)
        rows = rows.select(schema.names).cast(schema)
        if set(scope) != set(spec.partition_scope):
            raise ValueError(
                f"{spec.name} is replaced per {spec.partition_scope}, not {tuple(scope)}"
            )
        for column, value in scope.items():
            values = set(pc.unique(rows.column(column)).to_pylist())
            if values - {value}:
                raise ValueError(
                    f"rows for {spec.name} scope {dict(scope)} contain {column}={values}"
                )
        if pc.count_distinct(rows.column("row_id")).as_py() != rows.num_rows:
            raise ValueError(f"duplicate row_id in rows for {spec.name} {dict(scope)}")
        return rows.sort_by("row_id")

    def _prepare(self, name, rows, scope, dim) -> tuple[TableSpec, pa.Table, dict[str, str]]:
        spec = TABLES[name]
        if spec.vector_columns and dim is None:
            raise ValueError(f"{name} has vector columns: pass their length as dim")
        return spec, self._conform(spec, rows, scope, dim), dict(scope)

    def replace(
        self,
        name: str,
        rows: pa.Table | list[dict],
        *,
        scope: Mapping[str, str],
        dim: int | None = None,
        where: str | None = None,
    ) -> WriteResult:
        """Atomically replace one scope's rows with `rows` (no commit when nothing changed), or
        only the scope's rows matching the SQL `where` (e.g. some media items of a decade).

        Only rows that differ from the stored ones are written and only rows no longer there
        are deleted, in one commit. `row_id` is unique in the whole table: a row whose id
        exists in another scope is moved here (an item whose decade changed), not duplicated.
        A table with vector columns needs their length `dim`.
        """
        spec, rows, scope = self._prepare(name, rows, scope, dim)

        def commit(table: lancedb.table.Table, attempt: int) -> WriteResult:
            current = self.read(name, scope, filter=where)
            changed = _changed_rows(rows, current)
            removed = pc.filter(
                current.column("row_id"),
                pc.invert(pc.is_in(current.column("row_id"), value_set=rows.column("row_id"))),
            ).to_pylist()
            return self._commit(
                table, spec, changed, scope, rows.num_rows, removed=removed, attempt=attempt
            )

        return self._with_retries(name, scope, dim, commit)

    def upsert(
        self,
        name: str,
        rows: pa.Table | list[dict],
        *,
        scope: Mapping[str, str],
        dim: int | None = None,
    ) -> WriteResult:
        """Insert `rows` into one scope, updating stored rows of the same `row_id` only where
        they differ, in one commit (none when nothing differs). The cost follows the rows
        given, not the scope's size: this is how a stage commits a batch of items."""
        spec, rows, scope = self._prepare(name, rows, scope, dim)
        if rows.num_rows == 0:
            table = self.table(name, dim=dim)
            return WriteResult(name, scope, False, table.version, 0)

        def commit(table: lancedb.table.Table, attempt: int) -> WriteResult:
            stored = self.read(name, filter=sql_in("row_id", rows.column("row_id").to_pylist()))
            changed = _changed_rows(rows, stored)
            return self._commit(table, spec, changed, scope, rows.num_rows, attempt=attempt)

        return self._with_retries(name, scope, dim, commit)

    def unchanged(self, name: str, scope: Mapping[str, str]) -> WriteResult:
        """A write that changed nothing (the table's current version)."""
        return WriteResult(name, dict(scope), False, self.table(name).version, 0)

    def delete_where(self, name: str, scope: Mapping[str, str], predicate: str) -> WriteResult:
        """Delete the scope's rows matching a SQL predicate, in one commit (none when no row
        matches), e.g. the rows of items no longer in a decade (by cache key)."""
        scope = dict(scope)

        def commit(table: lancedb.table.Table, attempt: int) -> WriteResult:
            where = f"({scope_filter(scope)}) AND ({predicate})"
            n = table.count_rows(where)
            if not n:
                return WriteResult(name, scope, False, table.version, 0)
            table.delete(where)
            return WriteResult(name, scope, True, table.version, 0, deleted=n, attempts=attempt)

        return self._with_retries(name, scope, None, commit)

    def _commit(
        self,
        table: lancedb.table.Table,
        spec: TableSpec,
        changed: pa.Table,
        scope: dict[str, str],
        n_rows: int,
        *,
        removed: list[str] = (),
        attempt: int,
    ) -> WriteResult:
        """Write the changed rows and delete the removed ids of a scope in one commit."""
        name = spec.name
        if not changed.num_rows and not removed:
            return WriteResult(name, scope, False, table.version, n_rows)
        gone = f"({scope_filter(scope)}) AND {sql_in('row_id', removed)}"
        if not changed.num_rows:
            table.delete(gone)
            return WriteResult(
                name, scope, True, table.version, n_rows, deleted=len(removed), attempts=attempt
            )
        merge = table.merge_insert("row_id").when_matched_update_all().when_not_matched_insert_all()
        if removed:
            merge = merge.when_not_matched_by_source_delete(gone)
        # LanceDB counts a null vector as "bad"; vector columns are nullable by contract and
        # rows were cast to their fixed size, so "null" keeps nulls (and would null a NaN
        # vector) instead of failing
        merged = merge.execute(changed, on_bad_vectors="null" if spec.vector_columns else "error")
        return WriteResult(
            name,
            scope,
            True,
            merged.version,
            n_rows,
            inserted=merged.num_inserted_rows,
            updated=merged.num_updated_rows,
            deleted=merged.num_deleted_rows,
            attempts=attempt,
        )

    def _with_retries(self, name, scope, dim, commit) -> WriteResult:
        for held in self._leases:
            held.check()  # a writer that lost its lease commits nothing more
        for attempt in range(1, self.commit_retries + 1):
            table = self.table(name, dim=dim)
            try:
                result = commit(table, attempt)
            except (OSError, RuntimeError) as exc:
                if attempt == self.commit_retries or not _retryable(exc):
                    raise
                delay = min(5.0, 0.1 * 2**attempt) * (0.5 + random.random())
                log.warning("commit to %s %s failed (%s); retry in %.1fs", name, scope, exc, delay)
                time.sleep(delay)
                continue
            if result.committed:
                self._after_write(table)
            return result
        raise AssertionError("unreachable")

    def _after_write(self, table: lancedb.table.Table) -> None:
        if not any(ix.columns == ["decade"] for ix in table.list_indices()):
            try:
                from lancedb.index import Bitmap

                table.create_index("decade", config=Bitmap(), replace=False)
            except (OSError, RuntimeError, ValueError) as exc:  # a concurrent writer made it
                log.info("decade index on %s not created: %s", table.name, exc)
        if len(_small_fragments(table)) >= self.compact_min_small_fragments:
            self.maintain(table.name)

    def maintain(self, name: str, *, retention: dt.timedelta | None = None) -> MaintenanceResult:
        """Compact small fragments, update indices and remove versions older than the retention.

        A fragment is small below about FRAGMENT_BYTES of data (rows counted at the table's mean
        row size), so a table of thumbnails stops rewriting its fragments once they reach that
        size, and one compaction reads at most COMPACT_MAX_SOURCE_BYTES: the cost of a commit
        does not grow with the table."""
        table = self.table(name)
        versions_before = len(table.list_versions())
        fragments_before = table.stats()["fragment_stats"]["num_fragments"]
        keep = self.version_retention if retention is None else retention
        dataset = table.to_lance()
        if len(_small_fragments(table)) > 1:
            dataset.optimize.compact_files(
                target_rows_per_fragment=_target_rows(table),
                max_source_bytes=COMPACT_MAX_SOURCE_BYTES,
            )
            table.checkout_latest()
            dataset = table.to_lance()
        dataset.optimize.optimize_indices()
        with warnings.catch_warnings():
            # A zero window is asked for only by a sole writer (the demo); Lance may warn.
            warnings.filterwarnings("ignore", message=".*removes every version except the latest")
            dataset.cleanup_old_versions(older_than=keep)
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


FRAGMENT_BYTES = 64 * 1024**2  # a fragment this big is not compacted again
COMPACT_MAX_SOURCE_BYTES = 256 * 1024**2  # one compaction reads at most this much


def _target_rows(table: lancedb.table.Table) -> int:
    """Rows of a full-size fragment of this table: FRAGMENT_BYTES at its mean row size."""
    stats = table.stats()
    row_bytes = stats["total_bytes"] / max(1, stats["num_rows"])
    return int(min(1_000_000, max(1024, FRAGMENT_BYTES / max(1.0, row_bytes))))


def _small_fragments(table: lancedb.table.Table) -> list[int]:
    """Ids of the fragments below the table's full size (candidates for compaction)."""
    target = _target_rows(table)
    return [
        f.fragment_id for f in table.to_lance().get_fragments() if f.metadata.physical_rows < target
    ]


def _changed_rows(rows: pa.Table, stored: pa.Table) -> pa.Table:
    """The rows of `rows` not stored exactly so (new ids, or any column differs)."""
    if not stored.num_rows:
        return rows
    import polars as pl

    stored = stored.select(rows.schema.names).cast(rows.schema)

    def keyed(table: pa.Table) -> pl.DataFrame:
        frame = pl.from_arrow(table)
        return pl.DataFrame({"row_id": frame["row_id"], "hash": frame.hash_rows(seed=7)})

    unchanged = keyed(rows).join(keyed(stored), on=["row_id", "hash"], how="semi")
    keep = pc.invert(pc.is_in(rows.column("row_id"), value_set=unchanged["row_id"].to_arrow()))
    return rows.filter(keep)


def _retryable(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("conflict", "retryable", "concurrent", "commit"))
