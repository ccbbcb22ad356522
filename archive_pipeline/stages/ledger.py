"""A stage's ledger (`stage_items`) and failure rows, and what they hold for a (decade, stage)
before a run: the entries, the failures, and the items whose rows the ledger vouches for but
the tables no longer hold."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from archive_pipeline.contract.schemas import TABLES
from archive_pipeline.core.sql import sql_in, sql_literal

if TYPE_CHECKING:
    from archive_pipeline.core.warehouse import Warehouse

LEDGER_TABLE = "stage_items"
FAILURES_TABLE = "failures"
Pair = tuple[str, str]  # (uri, cache key): how an item is known (one entry per URI)
Signature = tuple[str, str, str, str]  # (uri, cache key, error class, message) of a failure


@dataclass(frozen=True)
class _ItemRow:
    """The columns a ledger entry and a failure row share (the common ones, stage, URI)."""

    row_id: str
    decade: str
    media_id: str | None
    cache_key: str
    model_id: str | None
    model_params: str | None
    pipeline_version: str | None
    created_at: dt.datetime | None
    stage: str
    uri: str

    @property
    def pair(self) -> Pair:
        """(uri, cache key)."""
        return self.uri, self.cache_key


@dataclass(frozen=True)
class LedgerRow(_ItemRow):
    """One item's entry in `stage_items`: 'ok' (its rows are committed) or 'failed'."""

    status: str
    n_rows: int | None
    compute_s: float | None
    media_duration_s: float | None

    @property
    def vouches(self) -> bool:
        """Whether the entry says the item has rows in the stage's tables."""
        return self.status == "ok" and (self.n_rows or 0) > 0


@dataclass(frozen=True)
class FailureRow(_ItemRow):
    """One item's row in `failures`: why the stage could not process it."""

    store_key: str | None
    error_class: str
    message: str

    @property
    def signature(self) -> Signature:
        """What makes two failures the same one (a repeated failure keeps its first row)."""
        return self.uri, self.cache_key, self.error_class, self.message


def from_row(cls: type, row: Mapping[str, Any]):
    """A LedgerRow or FailureRow from a stored row (columns added later are left out)."""
    return cls(**{f.name: row.get(f.name) for f in dataclasses.fields(cls)})


def to_table(rows: Iterable[LedgerRow | FailureRow], table: str) -> pa.Table:
    """Rows as an Arrow table of `table`'s schema."""
    names = TABLES[table].schema.names
    return pa.Table.from_pylist(
        [{name: getattr(r, name) for name in names} for r in rows], schema=TABLES[table].schema
    )


@dataclass(frozen=True)
class Prior:
    """What a (decade, stage) holds before the run: ledger entries by (uri, cache key),
    failure rows by signature, and the entries whose rows are missing from the tables."""

    ledger: Mapping[Pair, LedgerRow] = dataclasses.field(default_factory=dict)
    failures: Mapping[Signature, FailureRow] = dataclasses.field(default_factory=dict)
    lost: frozenset[Pair] = frozenset()


def read_prior(
    warehouse: Warehouse, stage: str, decade: str, tables: Sequence[str], pairs: set[Pair]
) -> Prior:
    """The ledger and failures of (decade, stage) (one entry per item: small) and which of
    `pairs` the ledger vouches for without their rows (recomputed)."""
    scope = {"decade": decade, "stage": stage}
    for name in (LEDGER_TABLE, FAILURES_TABLE):
        warehouse.verify(name)
    ledger = [from_row(LedgerRow, r) for r in warehouse.read(LEDGER_TABLE, scope).to_pylist()]
    failures = [from_row(FailureRow, r) for r in warehouse.read(FAILURES_TABLE, scope).to_pylist()]
    return Prior(
        ledger={r.pair: r for r in ledger},
        failures={f.signature: f for f in failures},
        lost=frozenset(rows_missing(warehouse, tables, decade, ledger, pairs)),
    )


def rows_missing(
    warehouse: Warehouse,
    tables: Sequence[str],
    decade: str,
    ledger: Sequence[LedgerRow],
    items: set[Pair],
) -> set[Pair]:
    """(uri, cache key) of the `items` the ledger says are done with rows whose rows are not
    all in the stage's tables (a table dropped, a data file lost): recomputed. One row count
    per table when everything is there; the keys of the decade's rows only when it is short."""
    vouched = [r for r in ledger if r.vouches]
    if not vouched:
        return set()
    scope = {"decade": decade}
    expected = sum(r.n_rows or 0 for r in vouched)
    names = set(warehouse.table_names())
    existing = [name for name in tables if name in names]  # (a dropped table counts 0)
    for name in existing:  # a lost or truncated data file: DamagedTableError naming the repair
        warehouse.verify(name)
    if sum(warehouse.count(name, scope) for name in existing) >= expected:
        return set()
    found: dict[Pair, int] = {}
    for name in existing:
        keys = warehouse.read(name, scope, columns=["uri", "cache_key"])
        counted = keys.group_by(["uri", "cache_key"]).aggregate([("uri", "count")])
        for row in counted.to_pylist():
            pair = (row["uri"], row["cache_key"])
            found[pair] = found.get(pair, 0) + row["uri_count"]
    return {r.pair for r in vouched if found.get(r.pair, 0) < (r.n_rows or 0) and r.pair in items}


def done_elsewhere(
    warehouse: Warehouse, stage: str, decade: str, wanted: Sequence[str], *, exclude: set[Pair]
) -> dict[str, Pair]:
    """{cache key: (decade, uri) of an item done with it under another URI} (another decade,
    or this one before a move or rename), for the `wanted` keys. `exclude`: (uri, key) pairs
    not to use (the items to do, whose rows are not there)."""
    if not wanted:
        return {}
    where = (
        f"stage = {sql_literal(stage)} AND status = 'ok'"
        f" AND {sql_in('cache_key', sorted(set(wanted)))}"
    )
    found = warehouse.read(LEDGER_TABLE, filter=where, columns=["decade", "uri", "cache_key"])
    done: dict[str, Pair] = {}
    for row in sorted(found.to_pylist(), key=lambda r: (r["decade"] == decade, r["uri"])):
        if (row["uri"], row["cache_key"]) not in exclude:
            done.setdefault(row["cache_key"], (row["decade"], row["uri"]))
    return done
