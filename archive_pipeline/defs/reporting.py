"""Dagster metadata shared by the stage assets: counts, timings, failure check, previews."""

from __future__ import annotations

import hashlib

import dagster as dg
import pyarrow as pa

from archive_pipeline.stages.base import PartitionReport


def markdown_table(rows: list[dict], columns: list[str], *, limit: int = 10) -> str:
    """Render the first rows as a markdown table for the Dagster UI."""
    if not rows:
        return "_no rows_"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        cells = [str(row.get(c, "")).replace("|", "\\|").replace("\n", " ")[:80] for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more rows_")
    return "\n".join(lines)


def skipped_md(skipped: list[tuple[str, str]]) -> dg.MetadataValue:
    """A markdown list of skipped items and why."""
    return dg.MetadataValue.md("\n".join(f"- {key}: {why}" for key, why in skipped) or "none")


def data_version(rows: pa.Table) -> dg.DataVersion:
    """A data version that changes exactly when the partition's rows' cache keys change."""
    keys = sorted(set(rows.column("cache_key").to_pylist())) if rows.num_rows else []
    return dg.DataVersion(hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16])


def report_metadata(
    report: PartitionReport, *, table: str | None = None
) -> dict[str, dg.MetadataValue | int | float | str]:
    """The counts and timings every stage asset reports (rows and commit of `table`, default
    the stage's first table)."""
    rows = report.tables[table] if table else report.rows
    write = report.writes[table] if table else report.write
    return {
        "items": report.n_items,
        "reused_from_cache": report.n_reused,
        "computed": report.n_computed,
        "failures": report.n_failed,
        "rows": rows.num_rows,
        "committed": write.committed,
        "table_version": write.version,
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


def failure_check(
    report: PartitionReport, *, check_name: str, asset_key: str, max_fraction: float
) -> dg.AssetCheckResult:
    """Fail (severity ERROR) when the decade's failed items exceed `max_fraction`."""
    fraction = report.failure_fraction
    failures = report.failures.select(["store_key", "error_class", "message"]).to_pylist()
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=fraction <= max_fraction,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{report.n_failed} of {report.n_items} items failed "
        f"({fraction:.0%}; threshold {max_fraction:.0%})",
        metadata={
            "failures": report.n_failed,
            "failure_fraction": fraction,
            "threshold": max_fraction,
            "failed_items": dg.MetadataValue.md(
                markdown_table(failures, ["store_key", "error_class", "message"])
            ),
        },
    )
