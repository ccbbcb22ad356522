"""Derived tables rebuild only the items whose inputs changed (stages/derived.py)."""

from archive_pipeline.stages.derived import fingerprint, keyed, plan


def test_plan_rebuilds_changed_and_new_items_and_drops_items_gone():
    wanted = {"a": "k1", "b": "k2", "c": "k3"}
    written = {
        "a": frozenset({"k1"}),  # unchanged
        "b": frozenset({"old"}),  # inputs changed
        "d": frozenset({"k9"}),  # left the decade
    }
    result = plan(wanted, written)
    assert (result.todo, result.gone, result.unchanged) == (["b", "c"], ["d"], 1)
    assert list(result.groups(1)) == [["b"], ["c"]]
    # rows of one item left with two keys (a half-rebuilt item) are rebuilt
    assert plan({"a": "k1"}, {"a": frozenset({"k1", "k0"})}).todo == ["a"]


def test_fingerprint_is_order_free_and_salted():
    assert fingerprint(["x:ok:1", "y:ok:2"], "s") == fingerprint(["y:ok:2", "x:ok:1"], "s")
    assert fingerprint(["x:ok:1"], "s") != fingerprint(["x:ok:1"], "t")
    assert fingerprint(["x:ok:1"], "s") != fingerprint(["x:ok:2"], "s")
    assert keyed([{"media_id": "a", "cache_key": None}], {"a": "k"}) == [
        {"media_id": "a", "cache_key": "k"}
    ]
