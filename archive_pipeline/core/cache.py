"""The incremental cache of DESIGN §5: reuse a stage's stored rows when its inputs did not change.

Key = hash(content id, stage name, model id, stage parameters, stage code version). Every row a
stage writes carries its item's key in `cache_key`, and the `stage_items` ledger records the key
and status of every item; on the next run the rows of items whose key is unchanged are kept as
they are (created_at included) and only the other items are computed
(`archive_pipeline.stages.partition.process_partition`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(value: Mapping[str, Any]) -> str:
    """JSON with sorted keys and no whitespace: equal parameters give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(
    *,
    content_id: str,
    stage: str,
    model_id: str,
    params: Mapping[str, Any],
    code_version: str,
) -> str:
    """Return the cache key of one item for one stage configuration."""
    payload = canonical_json(
        {
            "content": content_id,
            "stage": stage,
            "model": model_id,
            "params": params,
            "code": code_version,
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
