"""The deletion guard (DESIGN §9a): a listing that lost many of a decade's items is more
likely an empty mount, a mistyped prefix or another inbox than an archivist's deletions, so
the run stops before removing their rows and says what it would remove and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from archive_pipeline.core.sql import sql_in

CATALOG = "media_catalog"


class RemovalRefusedError(RuntimeError):
    """A run would remove more of a decade than the guard allows (nothing was removed)."""


@dataclass(frozen=True)
class RemovalGuard:
    """How much of a decade a run may remove without `allow` (ARCHIVE_ALLOW_REMOVALS)."""

    max_fraction: float = 0.5
    allow: bool = False
    why: str = ""  # what the caller knows (e.g. another inbox than the warehouse's)

    def check(self, warehouse, decade: str, *, before: Sequence[str], now: Sequence[str]) -> None:
        """Raise RemovalRefusedError when the items of `before` (URIs the decade had) missing
        from `now` are all of them (N>0 to 0) or more than `max_fraction` of them. An item
        whose content is still in the decade under another URI was moved, not removed."""
        gone = sorted(set(before) - set(now))
        if not gone or self.allow:
            return
        had = len(set(before))
        gone = _not_moved(warehouse, decade, gone, now)
        share = len(gone) / max(1, had)
        if not gone or (now and share <= self.max_fraction):
            return
        why = self.why or (
            "the inbox lists no media for this decade (an empty or unmounted folder, a wrong "
            "prefix?)"
            if not now
            else "the inbox no longer lists them"
        )
        examples = ", ".join(
            uri.rsplit("/", 2)[-2] + "/" + uri.rsplit("/", 1)[-1] for uri in gone[:3]
        )
        raise RemovalRefusedError(
            f"{decade}: this run would remove {len(gone)} of {had} catalogued items "
            f"({share:.0%}; e.g. {examples}) and their rows in every table: {why}. Nothing was "
            f"removed. If they are gone on purpose, run again with --allow-removals (or "
            f"ARCHIVE_ALLOW_REMOVALS=1); the guard allows up to {self.max_fraction:.0%} "
            "(ARCHIVE_MAX_REMOVAL_FRACTION)"
        )


def _not_moved(warehouse, decade: str, gone: list[str], now: Sequence[str]) -> list[str]:
    """The URIs of `gone` that did not move: neither catalogued in another decade now (their
    metadata changed) nor with their content catalogued under another URI (a move, a rename,
    the same files in a relocated inbox)."""
    rows = warehouse.read(
        CATALOG, columns=["uri", "decade", "media_id"], filter=sql_in("uri", gone)
    ).to_pylist()
    elsewhere = {r["uri"] for r in rows if r["decade"] != decade}
    old = {r["uri"]: r["media_id"] for r in rows if r["decade"] == decade}
    ids = sorted({m for m in old.values() if m})
    present: set[str] = set()
    if ids:
        found = warehouse.read(CATALOG, columns=["uri", "media_id"], filter=sql_in("media_id", ids))
        leaving = set(gone)
        present = {r["media_id"] for r in found.to_pylist() if r["uri"] not in leaving}
    return [u for u in gone if u not in elsewhere and (old.get(u) is None or old[u] not in present)]
