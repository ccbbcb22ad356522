"""SQL filter text for Lance scans, deletes and merges (no lancedb import: usable anywhere)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def sql_literal(value: str) -> str:
    """Quote a string for a Lance SQL filter."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Sequence[str], *, negate: bool = False) -> str:
    """`column IN (...)` (or NOT IN) for string values; with no values, a predicate that is
    false (IN) or true (NOT IN) for every row."""
    if not values:
        return "true" if negate else "false"
    listed = ", ".join(sql_literal(v) for v in values)
    return f"{column} {'NOT IN' if negate else 'IN'} ({listed})"


def scope_filter(scope: Mapping[str, str]) -> str:
    """Build `col = 'value' AND ...` for a partition scope."""
    return " AND ".join(f"{name} = {sql_literal(value)}" for name, value in scope.items())


def pair_in(
    pairs: Sequence[tuple[str, str]],
    *,
    columns: tuple[str, str] = ("uri", "cache_key"),
    negate: bool = False,
) -> str:
    """`(a, b) IN (...)` (or NOT IN) for pairs of string values, as `concat(a, ' ', b)`: the
    second column must hold no space (a cache key), so each joined value names one pair."""
    joined = [f"{a} {b}" for a, b in pairs]
    return sql_in(f"concat({columns[0]}, ' ', {columns[1]})", joined, negate=negate)
