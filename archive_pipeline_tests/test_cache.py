"""The incremental cache mechanism (DESIGN §5)."""

import pyarrow as pa

from archive_pipeline.core.cache import cache_key, plan

BASE = {
    "content_id": "abc",
    "stage": "s",
    "model_id": "m1",
    "params": {"beam": 5},
    "code_version": "1",
}


def test_cache_key_changes_with_every_component():
    key = cache_key(**BASE)
    assert key == cache_key(**{**BASE, "params": {"beam": 5}})
    for field, value in [
        ("content_id", "abd"),
        ("stage", "t"),
        ("model_id", "m2"),
        ("params", {"beam": 1}),
        ("code_version", "2"),
    ]:
        assert cache_key(**{**BASE, field: value}) != key, field


def test_plan_reuses_hits_and_drops_stale_rows():
    existing = pa.table({"cache_key": ["k1", "k1", "k2", "gone"], "v": [1, 2, 3, 4]})
    items = ["k1", "k3"]
    result = plan(existing, items, key_of=lambda item: item)
    assert result.todo == ["k3"]
    assert result.reused.column("v").to_pylist() == [1, 2]
    assert result.n_reused_items == 1


def test_plan_on_empty_table_computes_everything():
    existing = pa.table({"cache_key": pa.array([], pa.string())})
    assert plan(existing, ["a", "b"], key_of=str).todo == ["a", "b"]


def test_plan_retry_forces_recompute():
    existing = pa.table({"cache_key": ["a"]})
    result = plan(existing, ["a"], key_of=str, retry=lambda item: True)
    assert result.todo == ["a"] and result.reused.num_rows == 0
