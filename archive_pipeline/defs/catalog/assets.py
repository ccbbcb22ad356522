"""The inbox (an observable source asset: the top of the lineage) and the media_catalog asset:
every media file of a decade, probed, hashed and dated."""

import collections
import dataclasses
import hashlib
import warnings

import dagster as dg

from archive_pipeline.config import settings
from archive_pipeline.core.inventory import items_digest, scan_inventory
from archive_pipeline.defs.partitions import decade_partitions, register_decades
from archive_pipeline.defs.reporting import (
    OWNERS,
    markdown_table,
    preview,
    table_definition_metadata,
)
from archive_pipeline.defs.resources import LanceWarehouse, MediaStore, RayResource
from archive_pipeline.defs.stage_assets import stage_result, writer_name
from archive_pipeline.stages.catalog import CatalogStage, catalog_decade

INBOX_NOTE = "inbox"  # the inbox the warehouse mirrors (beside the tables)
INBOX_DIGEST = "inbox_digest"  # media_catalog's metadata: the decade's inbox as catalogued


with warnings.catch_warnings():  # observable source assets are a Dagster beta: warned at load
    warnings.filterwarnings("ignore", message=".*observable_source_asset")
    _observable_source_asset = dg.observable_source_asset(
        group_name="catalog",
        kinds={"s3", "folder"},
        description="The media store (ARCHIVE_INBOX: a folder or s3://bucket/prefix), listed: "
        "its data version changes when a file, sidecar or catalogue.csv does. Observing it adds "
        "the decades that have media as partitions.",
    )


@_observable_source_asset
def inbox(context: dg.AssetExecutionContext, media_store: MediaStore) -> dg.ObserveResult:
    """List the inbox: items per decade; decades with media become partitions."""
    store = media_store.get_store()
    inventory = scan_inventory(store)
    digests = inventory.decade_digests()
    added = register_decades(context.instance, digests)
    if added:
        context.log.info(f"decades with media, now partitions: {added}")
    counts = collections.Counter(item.decade for item in inventory.items)
    version = hashlib.sha256(repr(sorted(digests.items())).encode()).hexdigest()[:24]
    return dg.ObserveResult(
        data_version=dg.DataVersion(version),
        metadata={
            "location": store.root_uri,
            "media_items": len(inventory.items),
            "decades": dg.MetadataValue.md(
                markdown_table(
                    [{"decade": d, "items": n} for d, n in sorted(counts.items())],
                    ["decade", "items"],
                )
            ),
            "warnings": len(inventory.warnings),
        },
    )


def run_settings() -> dg.MetadataValue:
    """The settings as this run read them (secrets masked), for the run's record."""
    rows = [
        {"variable": env, "value": value or "—", "from": source}
        for env, value, source in settings.effective()
    ]
    return dg.MetadataValue.md(markdown_table(rows, ["variable", "value", "from"], limit=200))


@dg.asset(
    partitions_def=decade_partitions,
    deps=[inbox],
    code_version=CatalogStage.code_version,
    group_name="catalog",
    kinds={"lance", "ray"},
    owners=OWNERS,
    metadata=table_definition_metadata("media_catalog"),
)
def media_catalog(
    context: dg.AssetExecutionContext,
    media_store: MediaStore,
    warehouse: LanceWarehouse,
    ray: RayResource,
) -> dg.MaterializeResult:
    """Probe, hash and date every media file of the decade into the Lance table media_catalog."""
    decade = context.partition_key
    store = media_store.get_store()
    inventory = scan_inventory(store)
    items = inventory.for_decade(decade)
    context.log.info(
        f"{decade}: {len(items)} of {len(inventory.items)} media items in {store.root_uri}"
    )
    wh = warehouse.get_warehouse()
    guard = warehouse.removal_guard()
    mirrored = (wh.read_note(INBOX_NOTE) or {}).get("inbox")
    if mirrored and mirrored != store.root_uri:
        why = (
            f"this warehouse was built from the inbox {mirrored}, and this run reads "
            f"{store.root_uri}"
        )
        context.log.warning(f"{why}: items only in the other inbox count as removed")
        guard = dataclasses.replace(guard, why=why)
    report = catalog_decade(
        decade=decade,
        items=items,
        store=store,
        warehouse=wh,
        compute=ray.compute(),
        resources=ray.resources_of(CatalogStage),
        log=context.log,
        removal_guard=guard,
        writer=writer_name(context),
        policy=warehouse.commit_policy(),
    )
    if mirrored != store.root_uri:
        wh.write_note(INBOX_NOTE, {"inbox": store.root_uri})
    rows = report.read(columns=["kind", "duration_s", "size_bytes"]).to_pylist()  # 1 per file
    kinds = collections.Counter(row["kind"] for row in rows)
    hours = sum(row["duration_s"] or 0.0 for row in rows) / 3600
    warnings = [i.metadata_warning for i in items if i.metadata_warning]
    return stage_result(
        report,
        wh,
        **{INBOX_DIGEST: items_digest(items)},
        run_settings=run_settings(),
        **{f"{kind}_files": kinds.get(kind, 0) for kind in ("audio", "video", "image")},
        hours_of_media=round(hours, 4),
        total_mb=round(sum(row["size_bytes"] for row in rows) / 1e6, 3),
        metadata_warnings=dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "none"),
        preview=dg.MetadataValue.md(
            preview(report, ["file", "kind", "duration_s", "decade_rule", "title"])
        ),
    )
