"""Compare two warehouses table by table: the same tables, the same rows (by row_id), the same
values, leaving out the columns that record when and how long (`created_at`, `compute_s`).

    python scripts/compare_warehouses.py BEFORE/warehouse AFTER/warehouse

What a refactor that must not change results checks (`make demo` before and after, each run
with the same ARCHIVE_HOME path, moved aside after: URIs and row ids include the inbox path).
A rebuilt demo inbox has new file times: `media_catalog.modified_at` and the catalogue's cache
keys (in `media_catalog`, `failures`, `stage_items`) follow them; every other table must match.
Exits 1 and names the differences; ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VOLATILE = ("created_at", "compute_s")


def table_differences(before, after, name: str, ignore: tuple[str, ...]) -> list[str]:
    """What differs between one table of two warehouses (empty: identical)."""
    a, b = before.read(name), after.read(name)
    if a.schema.names != b.schema.names:
        return [f"{name}: columns {a.schema.names} vs {b.schema.names}"]
    keep = [c for c in a.schema.names if c not in ignore]
    a, b = a.select(keep).sort_by("row_id"), b.select(keep).sort_by("row_id")
    if a.num_rows != b.num_rows:
        return [f"{name}: {a.num_rows} rows vs {b.num_rows}"]
    ids_a, ids_b = a.column("row_id").to_pylist(), b.column("row_id").to_pylist()
    if ids_a != ids_b:
        only = sorted(set(ids_a) ^ set(ids_b))[:3]
        return [f"{name}: different row ids, e.g. {only}"]
    out = []
    for column in keep:
        if not a.column(column).equals(b.column(column)):
            rows = [
                i
                for i, (x, y) in enumerate(
                    zip(a.column(column).to_pylist(), b.column(column).to_pylist(), strict=True)
                )
                if x != y
            ]
            out.append(f"{name}.{column}: {len(rows)} row(s) differ, e.g. row_id {ids_a[rows[0]]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--ignore", nargs="*", default=list(VOLATILE), help="columns left out")
    args = parser.parse_args()

    from archive_pipeline.core.warehouse import Warehouse

    before = Warehouse(args.before, read_only=True)
    after = Warehouse(args.after, read_only=True)
    names_a, names_b = set(before.table_names()), set(after.table_names())
    differences = [f"tables only in one: {sorted(names_a ^ names_b)}"] if names_a ^ names_b else []
    rows = {}
    for name in sorted(names_a & names_b):
        differences += table_differences(before, after, name, tuple(args.ignore))
        rows[name] = before.count(name)
    for line in differences:
        print(line)
    print(json.dumps({"identical": not differences, "rows": rows, "ignored": args.ignore}))
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
