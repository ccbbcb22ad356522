"""The incremental cache of DESIGN §5: reuse a stage's stored rows when its inputs did not change.

Key = hash(content id, stage name, model id, stage parameters, stage code version). Every row a
stage writes carries its item's key in `cache_key`; on the next run the rows of items whose key
is unchanged are kept as they are (created_at included) and only the other items are computed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

T = TypeVar("T")


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


@dataclass(frozen=True)
class CachePlan(Generic[T]):
    """Which stored rows are reused and which items must be computed."""

    reused: pa.Table
    todo: list[T]
    keys: dict[str, T]

    @property
    def n_reused_items(self) -> int:
        """Items whose rows were found under their current key."""
        return len(self.keys) - len(self.todo)


def plan(
    existing: pa.Table,
    items: Sequence[T],
    key_of: Callable[[T], str],
    *,
    retry: Callable[[T], bool] | None = None,
) -> CachePlan[T]:
    """Split `items` into cache hits (their rows in `existing` are kept) and work to do.

    An item is a hit when `existing` has rows with its key; `retry(item)` can force a recompute.
    Rows whose key belongs to no current item (changed or removed media) are dropped.
    """
    keys = {key_of(item): item for item in items}
    stored = set(existing.column("cache_key").to_pylist()) if existing.num_rows else set()
    todo = [item for k, item in keys.items() if k not in stored or (retry and retry(item))]
    keep = set(keys) - {key_of(item) for item in todo}
    if existing.num_rows and keep:
        mask = pc.is_in(existing.column("cache_key"), value_set=pa.array(sorted(keep)))
        reused = existing.filter(mask)
    else:
        reused = existing.slice(0, 0)
    return CachePlan(reused=reused, todo=todo, keys=keys)
