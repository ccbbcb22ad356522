"""The decade partitions every asset shares, defined once.

Decades follow the archive: a decade is a partition once media for it have been seen (by the
inbox sensor, the nightly backfill, an observation of the `inbox` source asset, or
`archive-pipeline run`), so the UI shows no decade as "missing" that has nothing to process.
The keys come from `core.decades.PARTITION_KEYS` ("1900s".."2020s", "undated"); a decade
whose media all leave the archive stays a partition: its run removes its rows.
"""

from collections.abc import Iterable

import dagster as dg

from archive_pipeline.core.decades import PARTITION_KEYS

DECADES_PARTITION_SET = "decades"
decade_partitions = dg.DynamicPartitionsDefinition(name=DECADES_PARTITION_SET)


def known_decades(instance: dg.DagsterInstance) -> list[str]:
    """The decades that are partitions now."""
    return list(instance.get_dynamic_partitions(DECADES_PARTITION_SET))


def new_decades(known: Iterable[str], decades: Iterable[str]) -> list[str]:
    """The decades among `decades` that are not in `known` (partitions), in partition order."""
    known, wanted = set(known), set(decades)
    return [key for key in PARTITION_KEYS if key in wanted and key not in known]


def register_decades(instance: dg.DagsterInstance, decades: Iterable[str]) -> list[str]:
    """Add the decades that are not partitions yet (in partition order); the ones added."""
    added = new_decades(known_decades(instance), decades)
    if added:
        instance.add_dynamic_partitions(DECADES_PARTITION_SET, added)
    return added


def add_request(decades: list[str]) -> list[dg.AddDynamicPartitionsRequest]:
    """A sensor's request to add these decades as partitions (none when empty)."""
    return [decade_partitions.build_add_request(decades)] if decades else []
