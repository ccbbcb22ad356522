"""A decade's health read back from the warehouse: failed items, items without rows, stale
vectors. The asset checks render these; they read the committed tables, not a run's memory, so
a check also catches rows lost or never written since (e.g. new items catalogued after a stage
ran)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow.compute as pc

from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.stages.ledger import FAILURES_TABLE, LEDGER_TABLE


@dataclass(frozen=True)
class Problem:
    """One item a check reports: its URI and what is wrong."""

    uri: str
    error_class: str
    message: str


@dataclass
class DecadeHealth:
    """How one asset stands for one decade: items expected, failed, and without rows."""

    asset: str
    decade: str
    expected: int
    failed: list[Problem] = field(default_factory=list)
    missing: list[Problem] = field(default_factory=list)

    @property
    def failure_fraction(self) -> float:
        """Failed items over expected items (0 when none are expected)."""
        return len(self.failed) / self.expected if self.expected else 0.0


def uris(warehouse: Warehouse, table: str, decade: str, where: str | None = None) -> set[str]:
    """The distinct URIs with rows in one decade of a table (reads only that column; none for
    a table not written yet), only rows matching the SQL `where` when given."""
    if table not in warehouse.table_names():
        return set()
    column = warehouse.read(table, {"decade": decade}, columns=["uri"], filter=where).column("uri")
    return set(pc.unique(column).to_pylist()) if len(column) else set()


def stage_health(
    warehouse: Warehouse,
    *,
    asset: str,
    stage: str,
    decade: str,
    expected: Iterable[str],
) -> DecadeHealth:
    """Health of a stage's table for a decade, from the ledger (`stage_items`), `failures` and
    the table itself. `expected` are the URIs of the items of the stage's kind in the decade
    now (from the catalogue): each must be failed, done without rows (silence, no text), or
    have rows in the table."""
    scope = {"decade": decade, "stage": stage}
    ledger = {
        row["uri"]: row
        for row in warehouse.read(
            LEDGER_TABLE, scope, columns=["uri", "status", "n_rows"]
        ).to_pylist()
    }
    failures = {
        row["uri"]: row
        for row in warehouse.read(
            FAILURES_TABLE, scope, columns=["uri", "error_class", "message"]
        ).to_pylist()
    }
    with_rows = uris(warehouse, asset, decade)
    expected = sorted(set(expected))
    health = DecadeHealth(asset=asset, decade=decade, expected=len(expected))
    for uri in expected:
        entry = ledger.get(uri)
        if entry is None:
            health.missing.append(
                Problem(uri, "NotProcessed", f"not processed by {stage} since it was catalogued")
            )
        elif entry["status"] == "failed":
            failure = failures.get(uri) or {"error_class": "Failed", "message": "see failures"}
            health.failed.append(Problem(uri, failure["error_class"], failure["message"]))
        elif entry["n_rows"] and uri not in with_rows:
            health.missing.append(
                Problem(uri, "RowsMissing", f"{stage} produced rows but {asset} has none for it")
            )
    return health


def derived_health(
    warehouse: Warehouse,
    *,
    asset: str,
    decade: str,
    sources: Iterable[str],
    where: Mapping[str, str] | None = None,
) -> DecadeHealth:
    """Health of a table derived without a model: every item with rows in any of `sources`
    (those matching `where[source]`, if given) must have rows in `asset` (an item with rows in
    none of them has nothing to derive: a valid "nothing found")."""
    where = where or {}
    expected = set().union(
        *(uris(warehouse, source, decade, where.get(source)) for source in sources)
    )
    present = uris(warehouse, asset, decade)
    return DecadeHealth(
        asset=asset,
        decade=decade,
        expected=len(expected),
        missing=[
            Problem(uri, "RowsMissing", f"has rows in {', '.join(sources)} but none in {asset}")
            for uri in sorted(expected - present)
        ],
    )


def duplicated_row_ids(warehouse: Warehouse, table: str, decade: str) -> list[str]:
    """row_ids that more than one row of a table's decade carries (reads only that column;
    none for a table not written yet). Two writers of one scope commit such rows; the write
    lease prevents it, and `archive-pipeline repair` removes them."""
    if table not in warehouse.table_names():
        return []
    ids = warehouse.read(table, {"decade": decade}, columns=["row_id"]).column("row_id")
    if len(ids) == pc.count_distinct(ids).as_py():
        return []
    counts = pc.value_counts(ids)
    return sorted(v["values"] for v in counts.to_pylist() if v["counts"] > 1)


def documents_without_vector(warehouse: Warehouse, decade: str) -> list[Problem]:
    """search_documents rows of a decade whose text has no current text vector (its text or the
    model changed since segment_embeddings ran): findable by words only."""
    table = warehouse.table("search_documents")
    if "vector" not in table.schema.names:
        return []
    rows = (
        table.to_lance()
        .to_table(
            columns=["uri", "kind", "time_s", "text"],
            filter=f"decade = '{decade}' AND vector IS NULL AND text != ''",
        )
        .to_pylist()
    )
    return [
        Problem(r["uri"], "StaleVector", f"{r['kind']} at {r['time_s']:.1f} s: {r['text'][:60]}")
        for r in rows
    ]


def active_decades(inventory_decades: Iterable[str], warehouse: Warehouse) -> list[str]:
    """Decades worth running: those with items in the store now, and those with catalogued
    items or failures (whose items may have left the store: their rows must be removed).
    Sorted in partition order; reads no table that does not exist."""
    from archive_pipeline.core.decades import PARTITION_KEYS

    decades = set(inventory_decades)
    existing = set(warehouse.table_names())
    for table in ("media_catalog", FAILURES_TABLE):
        if table in existing:
            column = warehouse.read(table, columns=["decade"]).column("decade")
            decades |= set(pc.unique(column).to_pylist()) if len(column) else set()
    return [key for key in PARTITION_KEYS if key in decades]
