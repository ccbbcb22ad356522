"""The decade partitions every asset shares, defined once."""

import dagster as dg

from archive_pipeline.core.decades import PARTITION_KEYS

decade_partitions = dg.StaticPartitionsDefinition(list(PARTITION_KEYS))
