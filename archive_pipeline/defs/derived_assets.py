"""What every derived asset shares: one `derived_asset(...)` call builds an asset whose table is
made per media item from other tables (`stages/derived`), not by a model.

Per decade: the ledger entries of the asset's `deps` (its upstream stages, read from `deps`
rather than repeated by hand); the asset's `derive(run)`, which says which items may have rows
and what else their fingerprint holds; then only the items whose fingerprint changed are
rebuilt, a group at a time (one commit each), and the rows of items gone are removed: an
unchanged decade reads two small columns and writes nothing. The materialisation: counts,
`describe(write)` and a data version from the fingerprints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from archive_pipeline.core.warehouse import Warehouse, WriteResult
from archive_pipeline.defs.partitions import decade_partitions
from archive_pipeline.defs.reporting import (
    OWNERS,
    keys_version,
    table_definition_metadata,
    table_metadata,
)
from archive_pipeline.defs.stage_assets import decade_writer
from archive_pipeline.stages import derived


@dataclass(frozen=True)
class DerivedRun:
    """One decade's run of a derived asset, for its `derive`."""

    context: dg.AssetExecutionContext
    warehouse: Warehouse
    decade: str
    ledger: derived.Ledger  # the upstream stages' entries per item

    @property
    def scope(self) -> dict[str, str]:
        return {"decade": self.decade}


@dataclass(frozen=True)
class Derivation:
    """What a derived asset builds this run: the items that may have rows, each with the parts
    of its fingerprint besides its ledger entries, and how a group of items' rows is built."""

    extra: Mapping[str, Sequence[str]]  # media_id -> extra fingerprint parts (names, title...)
    build: Callable[[str], list[dict]]  # an SQL filter on media_id -> those items' rows
    salt: str  # the table's version and whatever else every row depends on (models)
    group_size: int  # items read and committed at a time: memory follows the group
    dim: int | None = None  # the vector length of a table with vectors
    # the asset's own metadata, once written (it may also maintain the table)
    describe: Callable[[WriteResult], Mapping[str, Any]] = field(default=lambda write: {})


def derived_asset(
    table: str,
    *,
    deps: Iterable[Any],
    code_version: str,
    description: str,
    group: str,
    derive: Callable[[DerivedRun], Derivation],
    resources: Iterable[str] = (),
    **asset_kwargs: Any,
) -> dg.AssetsDefinition:
    """The asset of a table derived per media item from its `deps` (see the module's doc);
    `resources`: the resource keys `derive` reads from `run.context.resources`."""
    deps = list(deps)
    # the ledger entries of every dep (a dep that is no stage, a derived table, has none)
    upstream = [d if isinstance(d, str) else d.key.to_user_string() for d in deps]

    @dg.asset(
        name=table,
        description=description,
        partitions_def=decade_partitions,
        deps=deps,
        code_version=code_version,
        group_name=group,
        kinds={"lance"},
        owners=OWNERS,
        metadata=table_definition_metadata(table),
        required_resource_keys={"warehouse", *resources},
        **asset_kwargs,
    )
    def _asset(context) -> dg.MaterializeResult:  # (no annotation: this module defers them)
        wh = context.resources.warehouse.get_warehouse()
        decade = context.partition_key
        with decade_writer(context, wh):
            ledger = derived.read_ledger(wh, decade, upstream)
            how = derive(DerivedRun(context, wh, decade, ledger))
            wanted = {
                media: ledger.fingerprint(media, extra, how.salt)
                for media, extra in sorted(how.extra.items())
            }
            todo = derived.plan(wanted, derived.written_keys(wh, table, decade))
            write = derived.rebuild(
                wh, table, decade, todo, how.build, group_size=how.group_size, dim=how.dim
            )
            own = how.describe(write)  # first: it may maintain the table (indexes)
            return dg.MaterializeResult(
                metadata={
                    **table_metadata(wh, table, write),
                    "items": len(wanted),
                    "rebuilt": len(todo.todo),
                    "unchanged": todo.unchanged,
                    **own,
                },
                data_version=keys_version(wanted.values()),
            )

    return _asset
