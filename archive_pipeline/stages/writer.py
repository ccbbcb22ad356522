"""The write side of a stage run: finished items into batches, each batch committed when the
commit policy says so (rows, then failures, then the ledger), and, once the decade is done,
the sweep of rows no item has any more."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from archive_pipeline.config import settings
from archive_pipeline.contract.schemas import TABLES
from archive_pipeline.core.compute import ItemOutcome
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.sql import pair_in, sql_in
from archive_pipeline.stages.base import ItemFailure, PartitionStage, common_values
from archive_pipeline.stages.ledger import (
    FAILURES_TABLE,
    LEDGER_TABLE,
    FailureRow,
    LedgerRow,
    Pair,
    to_table,
)
from archive_pipeline.stages.plan import PartitionPlan

if TYPE_CHECKING:
    from archive_pipeline.core.guard import RemovalGuard
    from archive_pipeline.core.warehouse import Warehouse, WriteResult

_DEFAULT = json.loads(settings.COMMIT_EVERY.default)


@dataclass(frozen=True)
class CommitPolicy:
    """When a stage commits its finished items: after `items` items, `media_h` hours of media
    or `seconds` seconds, whichever comes first (a killed run loses at most one batch, and the
    process holds one batch's rows at a time)."""

    items: int = _DEFAULT["items"]
    media_h: float = _DEFAULT["media_h"]
    seconds: float = _DEFAULT["seconds"]

    @classmethod
    def parse(cls, text: str | None) -> CommitPolicy:
        """The policy of ARCHIVE_COMMIT_EVERY's JSON (keys left out keep their default);
        SettingError naming the variable for an unknown key or a value out of range."""
        policy = cls(**settings.options(settings.COMMIT_EVERY, text, cls))
        if policy.items < 1 or policy.media_h <= 0 or policy.seconds <= 0:
            raise settings.SettingError(
                f"{settings.COMMIT_EVERY.env}={text!r}: items must be >= 1, media_h and seconds > 0"
            )
        return policy

    def due(self, items: int, media_s: float, since_s: float) -> bool:
        """Whether a batch of `items` items and `media_s` seconds of media, started `since_s`
        seconds ago, is to be committed now."""
        return items >= self.items or media_s >= self.media_h * 3600 or since_s >= self.seconds


class _Batch:
    """The rows, failures and ledger entries of the items finished since the last commit."""

    def __init__(self, tables: tuple[str, ...]) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
        self.failures: list[FailureRow] = []
        self.ledger: list[LedgerRow] = []
        self.media_s = 0.0
        self.started = time.monotonic()


class PartitionWriter:
    """Writes one stage's results for one decade: items added as they finish, committed in
    batches by `policy`; `writes` holds each table's commits chained (`WriteResult.then`)."""

    def __init__(
        self,
        warehouse: Warehouse,
        stage: PartitionStage,
        decade: str,
        plan: PartitionPlan,
        policy: CommitPolicy,
    ) -> None:
        self.warehouse, self.stage, self.decade, self.plan = warehouse, stage, decade, plan
        self.policy = policy
        self.tables = tuple(stage.tables)
        self.scope = {"decade": decade, "stage": stage.name}
        self.writes: dict[str, WriteResult | None] = dict.fromkeys([*self.tables, FAILURES_TABLE])
        self.failed: set[Pair] = set(plan.settled)  # this run's failures, and the settled ones
        self.media_s = 0.0  # media seconds of the items done (not failed) in this run
        self.batches = 0
        self._batch = _Batch(self.tables)

    def _record(self, name: str, write: WriteResult) -> None:
        self.writes[name] = write if self.writes[name] is None else self.writes[name].then(write)

    def add(self, i: int, outcome: ItemOutcome, error: tuple[str, str] | None) -> None:
        """Item i's rows (or failure) and its ledger entry into the batch; commit if due."""
        ref, key, now = self.plan.refs[i], self.plan.keys[i], dt.datetime.now(dt.UTC)
        common = common_values(self.stage, decade=self.decade, key=key, now=now)
        identity = {"media_id": ref.media_id, "stage": self.stage.name, "uri": ref.uri}
        entry = {
            **common,
            **identity,
            "row_id": row_id(LEDGER_TABLE, self.stage.name, self.decade, ref.uri),
            "media_duration_s": ref.duration_s,
            "compute_s": outcome.seconds,
        }
        batch = self._batch
        batch.media_s += ref.duration_s or 0.0
        if error is None:
            produced = self.stage.rows(self.plan.items[i], outcome.value, decade=self.decade)
            for name, rows in produced.items():
                batch.rows[name].extend({**row, **common} for row in rows)
            n_rows = sum(len(rows) for rows in produced.values())
            batch.ledger.append(LedgerRow(**entry, status="ok", n_rows=n_rows))
            self.media_s += ref.duration_s or 0.0
        else:
            # a repeated identical failure keeps its first rows (and time): re-runs idempotent
            repeated = self.plan.prior.failures.get((ref.uri, key, *error))
            batch.failures.append(repeated or self._failure(i, outcome, error, common))
            self.failed.add((ref.uri, key))
            old = self.plan.prior.ledger.get((ref.uri, key))
            batch.ledger.append(
                old
                if repeated and old is not None and old.status == "failed"
                else LedgerRow(**entry, status="failed", n_rows=0)
            )
        since = time.monotonic() - batch.started
        if self.policy.due(len(batch.ledger), batch.media_s, since):
            self.commit()

    def _failure(
        self, i: int, outcome: ItemOutcome, error: tuple[str, str], common: Mapping[str, Any]
    ) -> FailureRow:
        """Item i's failure row, new."""
        ref, (error_class, message) = self.plan.refs[i], error
        value = outcome.value
        media_id = (value.media_id if isinstance(value, ItemFailure) else None) or ref.media_id
        return FailureRow(
            **{**common, "row_id": row_id(self.stage.name, ref.uri), "media_id": media_id},
            stage=self.stage.name,
            uri=ref.uri,
            store_key=ref.store_key,
            error_class=error_class,
            message=message,
        )

    def commit(self) -> None:
        """Commit the batch: the stage's tables, then failures, then the ledger (last: an
        "ok" entry means the item's rows are committed). Each table is one atomic commit."""
        batch, self._batch = self._batch, _Batch(self.tables)
        if not batch.ledger:
            return
        wh, decade = self.warehouse, {"decade": self.decade}
        for name, rows in batch.rows.items():
            table = pa.Table.from_pylist(rows, schema=TABLES[name].schema)
            self._record(name, wh.upsert(name, table, scope=decade))
        failures = to_table(batch.failures, FAILURES_TABLE)
        self._record(FAILURES_TABLE, wh.upsert(FAILURES_TABLE, failures, scope=self.scope))
        # an item now ok loses its failure row (its row_id is the stage and the URI)
        if ok := [r.uri for r in batch.ledger if r.status == "ok"]:
            wh.delete_where(FAILURES_TABLE, self.scope, sql_in("uri", ok))
        wh.upsert(LEDGER_TABLE, to_table(batch.ledger, LEDGER_TABLE), scope=self.scope)
        self.batches += 1

    def sweep(self, removal_guard: RemovalGuard | None) -> None:
        """Once every item is done: rows of items no longer in the decade, or whose key
        changed, go (by key; and by URI and key where that key is still another item's).
        With `removal_guard`, a sweep that would remove too much stops before removing any."""
        wh, decade = self.warehouse, {"decade": self.decade}
        if self.plan.unchanged():
            for name in self.tables:
                self._record(name, wh.unchanged(name, decade))
            self._record(FAILURES_TABLE, wh.unchanged(FAILURES_TABLE, self.scope))
            return
        if removal_guard is not None:
            before = sorted({uri for uri, _ in self.plan.prior.ledger})
            removal_guard.check(wh, self.decade, before=before, now=[r.uri for r in self.plan.refs])
        current, left = self.plan.stale()
        gone = sql_in("cache_key", sorted(current), negate=True)
        if left:
            gone = f"({gone}) OR ({pair_in(left)})"
        for name in self.tables:
            self._record(name, wh.delete_where(name, decade, gone))
        not_failed = pair_in(sorted(self.failed), negate=True)
        self._record(FAILURES_TABLE, wh.delete_where(FAILURES_TABLE, self.scope, not_failed))
        wh.delete_where(LEDGER_TABLE, self.scope, gone)

    def counted(self) -> dict[str, WriteResult]:
        """Each table's commits with the decade's (or the stage's failures') rows counted."""
        return {
            name: replace(
                write,
                rows=self.warehouse.count(
                    name, {"decade": self.decade} if name in self.tables else self.scope
                ),
            )
            for name, write in self.writes.items()
        }
