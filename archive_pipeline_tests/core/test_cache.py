"""The incremental cache mechanism (DESIGN §5)."""

from archive_pipeline.core.cache import cache_key

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
