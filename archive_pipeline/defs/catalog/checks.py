"""Per-decade checks of media_catalog: every file in the store is catalogued or failed."""

from archive_pipeline.core.inventory import scan_inventory
from archive_pipeline.defs.checks import decade_checks
from archive_pipeline.defs.health import stage_health
from archive_pipeline.stages.catalog import CatalogStage


def _health(context, warehouse, decade):
    store = context.resources.media_store.get_store()
    expected = [item.uri for item in scan_inventory(store).for_decade(decade)]
    return stage_health(
        warehouse, asset="media_catalog", stage=CatalogStage.name, decade=decade, expected=expected
    )


media_catalog_checks = decade_checks(
    "media_catalog", _health, required_resource_keys={"media_store"}
)
