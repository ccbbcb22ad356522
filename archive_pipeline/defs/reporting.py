"""Dagster metadata shared by the assets: table metadata, counts, timings, previews."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa

from archive_pipeline.contract.schemas import TABLES, describe
from archive_pipeline.stages.partition import PartitionReport

if TYPE_CHECKING:
    from archive_pipeline.core.warehouse import Warehouse, WriteResult

OWNERS = ["team:archive-data"]


def _cell(row: dict, column: str) -> str:
    # previews lead with the file name: "file" is the last segment of the row's URI
    value = (
        row["uri"].rsplit("/", 1)[-1]
        if column == "file" and "file" not in row
        else row.get(column, "")
    )
    if isinstance(value, float):
        value = f"{value:.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")[:80]


def markdown_table(
    rows: list[dict], columns: list[str], *, limit: int = 10, total: int | None = None
) -> str:
    """Render the first rows as a markdown table for the Dagster UI (`file`: the URI's last
    segment; `total`: how many rows there are when `rows` is only the first few)."""
    if not rows:
        return "_no rows_"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        cells = [_cell(row, c) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    total = len(rows) if total is None else total
    if total > limit:
        lines.append(f"\n_{total - limit} more rows_")
    return "\n".join(lines)


def preview(report: PartitionReport, columns: list[str], *, table: str | None = None) -> str:
    """A markdown preview of the first rows a stage committed for the decade (reads 10 rows)."""
    read = ["uri" if c == "file" else c for c in columns]
    rows = report.read(table, columns=list(dict.fromkeys(read)), limit=10).to_pylist()
    total = report.writes[table].rows if table else report.write.rows
    return markdown_table(rows, columns, total=total)


def skipped_md(skipped: list[tuple[str, str]]) -> dg.MetadataValue:
    """A markdown list of skipped items and why."""
    return dg.MetadataValue.md("\n".join(f"- {key}: {why}" for key, why in skipped) or "none")


def keys_version(keys) -> dg.DataVersion:
    """A data version that changes exactly when a partition's set of cache keys changes."""
    return dg.DataVersion(hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16])


def data_version(rows: pa.Table) -> dg.DataVersion:
    """The data version of rows: their cache keys (see `keys_version`)."""
    return keys_version(set(rows.column("cache_key").to_pylist()) if rows.num_rows else ())


def report_version(report: PartitionReport) -> dg.DataVersion:
    """A stage asset's data version, from the report (without reading the decade's rows)."""
    return keys_version(report.cache_keys)


def column_schema(table: str) -> dg.TableSchema:
    """The Dagster column schema of a warehouse table, from the contract in `schemas.py`."""
    spec = TABLES[table]
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=(
                    "fixed_size_list<float>[dim]" if f.name in spec.vector_columns else str(f.type)
                ),
                description=describe(f),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in spec.schema
        ]
    )


def table_definition_metadata(table: str) -> dict[str, Any]:
    """Definition metadata of an asset stored as a Lance table: columns, table name, storage."""
    return {"dagster/column_schema": column_schema(table), "dagster/table_name": table}


def table_metadata(warehouse: Warehouse, table: str, write: WriteResult) -> dict[str, Any]:
    """Materialisation metadata of one table write: the decade's rows
    (`dagster/partition_row_count`), the whole table's (`dagster/row_count`), where it lives
    (`dagster/uri`), its name and columns, and the Lance version committed."""
    return {
        **table_definition_metadata(table),
        "dagster/partition_row_count": write.rows,
        "dagster/row_count": warehouse.table(table).count_rows(),
        "dagster/uri": warehouse.uri(table),
        "rows": write.rows,
        "lance_version": write.version,
        "committed": write.committed,
    }


def report_metadata(
    report: PartitionReport, warehouse: Warehouse, *, table: str | None = None
) -> dict[str, dg.MetadataValue | int | float | str]:
    """The table metadata, counts and timings every stage asset reports (for `table`, default
    the stage's first table)."""
    write = report.writes[table] if table else report.write
    return {
        **table_metadata(warehouse, write.table, write),
        "items": report.n_items,
        "reused_from_cache": report.n_reused,
        "computed": report.n_computed,
        # the same content done under another URI (a move, another decade): rows copied
        "copied": report.n_copied,
        "failures": report.n_failed,
        "commit_batches": report.batches,
        "seconds": round(report.seconds, 3),
        "compute_seconds": round(report.compute_seconds, 3),
        **(
            {"real_time_factor": round(report.real_time_factor, 2)}
            if report.real_time_factor
            else {}
        ),
    }


def throughput(report: PartitionReport, n: int, unit: str) -> dict[str, float]:
    """{'<unit>_per_second': n / compute seconds} when the run computed anything."""
    if not (report.n_computed and report.compute_seconds):
        return {}
    return {f"{unit}_per_second": round(n / report.compute_seconds, 2)}
