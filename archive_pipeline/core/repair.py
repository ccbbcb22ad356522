"""Find and remove what cannot be read in the warehouse's tables (`archive-pipeline repair`).

A Lance table is a list of fragments (data files) named by its latest manifest. When a data
file is lost or truncated, the fragments that still read are kept and the unreadable ones are
removed in one commit; when the table itself cannot be opened (its manifest is lost), it is
moved aside (a folder) or dropped (S3). Either way the rows gone are rows the ledger still
vouches for, so the next run of their decades computes them again (`process_partition`
reconciles ledger and tables; derived tables rebuild the items whose rows are missing). A lost
ledger (`stage_items`) means its items are computed again.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass

from archive_pipeline.contract.schemas import TABLES
from archive_pipeline.core.warehouse import DamagedTableError, Warehouse

DAMAGED = "_damaged"  # where a local table that cannot be opened is moved


@dataclass(frozen=True)
class TableRepair:
    """What repair found and did for one table."""

    table: str
    status: str  # 'ok', 'fragments removed', 'moved aside', 'dropped', 'duplicates removed'
    rows_lost: int = 0
    detail: str = ""

    def line(self) -> str:
        """One console line."""
        lost = f", {self.rows_lost} rows to rebuild" if self.rows_lost else ""
        return f"{self.table:>20}: {self.status}{lost}{': ' + self.detail if self.detail else ''}"


def unreadable_fragments(warehouse: Warehouse, name: str) -> list[tuple[int, int, str]]:
    """(fragment id, rows, error) of each fragment of a table whose data cannot be read
    (every column is read, a batch at a time); DamagedTableError if it cannot be opened."""
    dataset = warehouse.table(name).to_lance()
    bad = []
    for fragment in dataset.get_fragments():
        try:
            for _ in fragment.to_batches(batch_size=4096):
                pass
        except (OSError, RuntimeError, ValueError) as exc:
            rows = fragment.metadata.physical_rows or 0
            bad.append((fragment.fragment_id, rows, str(exc).splitlines()[0][:200]))
    return bad


def repair_table(warehouse: Warehouse, name: str) -> TableRepair:
    """Check one table and remove what cannot be read (see the module docstring)."""
    import lance

    if name not in warehouse.table_names():
        return TableRepair(name, "missing", detail="rebuilt by the next run where vouched for")
    try:
        bad = unreadable_fragments(warehouse, name)
    except DamagedTableError as exc:
        return _set_aside(warehouse, name, str(exc))
    if not bad:
        return TableRepair(name, "ok")
    dataset = warehouse.table(name).to_lance()
    operation = lance.LanceOperation.Delete([], [f for f, _, _ in bad], "true")
    lance.LanceDataset.commit(
        warehouse.uri(name),
        operation,
        read_version=dataset.version,
        storage_options=warehouse.storage_options or None,
    )
    return TableRepair(
        name,
        "fragments removed",
        rows_lost=sum(rows for _, rows, _ in bad),
        detail=f"{len(bad)} unreadable fragment(s), e.g. {bad[0][2]}",
    )


def _set_aside(warehouse: Warehouse, name: str, why: str) -> TableRepair:
    root = warehouse.local_root
    if root is None:
        warehouse.db.drop_table(name)
        return TableRepair(name, "dropped", detail=why[:200])
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    target = root / DAMAGED / f"{name}-{stamp}.lance"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(root / f"{name}.lance"), target)
    return TableRepair(name, "moved aside", detail=f"to {target}")


def remove_duplicates(warehouse: Warehouse, name: str) -> TableRepair | None:
    """Keep one row of each row_id carried by several (two writers committed the same rows;
    the write lease prevents it now), in one commit; None when there were none. Reads the
    row_id column of the whole table."""
    dataset = warehouse.table(name).to_lance()
    ids = dataset.to_table(columns=["row_id"], with_row_id=True)
    seen: set[str] = set()
    extra = []
    for row_id, address in zip(
        ids.column("row_id").to_pylist(), ids.column("_rowid").to_pylist(), strict=True
    ):
        if row_id in seen:
            extra.append(address)
        seen.add(row_id)
    if not extra:
        return None
    for start in range(0, len(extra), 10_000):
        chunk = ", ".join(str(a) for a in extra[start : start + 10_000])
        dataset.delete(f"_rowid IN ({chunk})")
    return TableRepair(name, "duplicates removed", detail=f"{len(extra)} duplicated rows")


def repair(warehouse: Warehouse, tables: list[str] | None = None) -> list[TableRepair]:
    """Check (and repair) the given contract tables, or every one that exists: unreadable
    parts removed, then duplicated rows."""
    unknown = sorted(set(tables or ()) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown tables {unknown}; tables are {sorted(TABLES)}")
    names = tables or [n for n in warehouse.table_names() if n in TABLES]
    results = []
    for name in names:
        result = repair_table(warehouse, name)
        results.append(result)
        if result.status in ("ok", "fragments removed"):
            deduplicated = remove_duplicates(warehouse, name)
            if deduplicated is not None:
                results.append(deduplicated)
    return results
