"""Tables derived per media item from other tables (`diarised_segments`, `search_documents`):
which items' inputs changed since their rows were written, known from the ledger and one
column of the derived table, without reading the inputs.

Each derived row carries in `cache_key` the fingerprint of the inputs it was built from (the
`stage_items` entries of its item, plus whatever else the caller salts it with: code version,
models). A run rebuilds only the items whose fingerprint differs from their rows', so an
unchanged decade reads two small columns and writes nothing, and a changed item costs its own
rows, not the decade's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from archive_pipeline.core.sql import sql_in
from archive_pipeline.core.warehouse import Warehouse, WriteResult
from archive_pipeline.stages.ledger import LEDGER_TABLE


class LedgerPart(NamedTuple):
    """One upstream ledger entry of an item. The URI is part of it: a moved or renamed file
    re-keys its derived rows."""

    stage: str
    status: str
    cache_key: str
    uri: str

    def __str__(self) -> str:  # how it enters a fingerprint
        return ":".join(self)


@dataclass(frozen=True)
class Ledger:
    """The upstream ledger entries of a decade's items."""

    parts: Mapping[str, list[LedgerPart]]  # media_id -> its entries
    productive: frozenset[str]  # items with an 'ok' entry that wrote rows (can have derived rows)

    def ok(self, media_id: str, stage: str) -> bool:
        """Whether `stage` succeeded on the item."""
        return any(p.stage == stage and p.status == "ok" for p in self.parts.get(media_id, ()))

    def fingerprint(self, media_id: str, extra: Iterable[str], salt: str) -> str:
        """The item's fingerprint: its entries, the caller's extra parts and the salt."""
        return fingerprint([*map(str, self.parts.get(media_id, ())), *extra], salt)


def fingerprint(parts: Iterable[str], salt: str) -> str:
    """A stable key of sorted parts and a salt."""
    text = "\n".join([salt, *sorted(parts)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_ledger(warehouse: Warehouse, decade: str, stages: Sequence[str]) -> Ledger:
    """The decade's ledger entries of `stages`, per media item."""
    entries = warehouse.read(
        LEDGER_TABLE,
        {"decade": decade},
        columns=["media_id", "stage", "status", "cache_key", "n_rows", "uri"],
        filter=sql_in("stage", list(stages)),
    ).to_pylist()
    parts: dict[str, list[LedgerPart]] = {}
    productive: set[str] = set()
    for e in entries:
        part = LedgerPart(e["stage"], e["status"], e["cache_key"], e["uri"])
        parts.setdefault(e["media_id"], []).append(part)
        if e["status"] == "ok" and (e["n_rows"] or 0) > 0:
            productive.add(e["media_id"])
    return Ledger(parts, frozenset(productive))


def written_keys(warehouse: Warehouse, table: str, decade: str) -> dict[str, frozenset[str]]:
    """{media_id: the cache keys of its rows} of a derived table's decade (two columns)."""
    rows = warehouse.read(table, {"decade": decade}, columns=["media_id", "cache_key"])
    pairs = rows.group_by(["media_id", "cache_key"]).aggregate([]) if rows.num_rows else rows
    keys: dict[str, set[str]] = {}
    for media, key in zip(
        pairs.column("media_id").to_pylist(), pairs.column("cache_key").to_pylist(), strict=True
    ):
        keys.setdefault(media, set()).add(key)
    return {media: frozenset(k) for media, k in keys.items()}


@dataclass(frozen=True)
class DerivedPlan:
    """What a derived asset does this run: the items to (re)build with their fingerprints, the
    items whose rows go, and how many are unchanged."""

    wanted: Mapping[str, str]  # media_id -> fingerprint of every item that may have rows
    todo: list[str]
    gone: list[str]
    unchanged: int

    def groups(self, size: int) -> Iterable[list[str]]:
        """The items to build, `size` at a time (one read and one commit per group)."""
        for start in range(0, len(self.todo), size):
            yield self.todo[start : start + size]


def plan(wanted: Mapping[str, str], written: Mapping[str, frozenset[str]]) -> DerivedPlan:
    """Items whose rows carry exactly their wanted fingerprint are unchanged; the other wanted
    items are rebuilt; items with rows that are not wanted lose them."""
    todo = sorted(m for m, key in wanted.items() if written.get(m) != frozenset([key]))
    gone = sorted(m for m in written if m not in wanted)
    return DerivedPlan(wanted, todo, gone, len(wanted) - len(todo))


def keyed(rows: list[dict], wanted: Mapping[str, str]) -> list[dict]:
    """Rows with `cache_key` set to their item's fingerprint."""
    return [{**row, "cache_key": wanted[row["media_id"]]} for row in rows]


def rebuild(
    warehouse: Warehouse,
    table: str,
    decade: str,
    todo: DerivedPlan,
    build: Callable[[str], list[dict]],
    *,
    group_size: int,
    dim: int | None = None,
) -> WriteResult:
    """Replace the rows of the items to rebuild, `group_size` items at a time (`build(filter)`
    gives the rows of the items matching that SQL filter; each group is one commit), then delete
    the rows of items gone; the write, with the decade's rows counted."""
    scope = {"decade": decade}
    write = warehouse.unchanged(table, scope)
    for media in todo.groups(group_size):
        group = sql_in("media_id", media)
        rows = keyed(build(group), todo.wanted)
        write = write.then(warehouse.replace(table, rows, scope=scope, dim=dim, where=group))
    if todo.gone:
        write = write.then(warehouse.delete_where(table, scope, sql_in("media_id", todo.gone)))
    return replace(write, rows=warehouse.count(table, scope))
