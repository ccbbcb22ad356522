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


def test_a_moved_item_changes_its_derived_fingerprint(tmp_path):
    """The same content under a new URI (a move, a rename): the ledger parts carry the URI, so
    the derived rows are rebuilt with the new URI instead of keeping the old one."""
    import datetime as dt

    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.stages.derived import LedgerPart, read_ledger

    wh = Warehouse(str(tmp_path / "wh"))
    scope = {"decade": "1980s", "stage": "transcripts"}

    def entry(uri: str) -> dict:
        return {
            "row_id": "r",
            "decade": "1980s",
            "media_id": "m1",
            "stage": "transcripts",
            "uri": uri,
            "status": "ok",
            "n_rows": 3,
            "cache_key": "same-content",
            "model_id": "w",
            "model_params": "{}",
            "pipeline_version": "t",
            "created_at": dt.datetime.now(dt.UTC),
        }

    wh.upsert("stage_items", [entry("file:///in/a.wav")], scope=scope)
    before = read_ledger(wh, "1980s", ["transcripts"])
    wh.upsert("stage_items", [entry("file:///in/1980s/tapes/a.wav")], scope=scope)
    after = read_ledger(wh, "1980s", ["transcripts"])
    assert before.productive == {"m1"} and before.ok("m1", "transcripts")
    assert not before.ok("m1", "speaker_turns")
    assert before.fingerprint("m1", [], "s") != after.fingerprint("m1", [], "s")
    # an entry enters the fingerprint as 'stage:status:cache_key:uri' (as before it was a tuple:
    # rows built by an earlier release keep their keys)
    assert before.parts["m1"] == [
        LedgerPart("transcripts", "ok", "same-content", "file:///in/a.wav")
    ]
    assert before.fingerprint("m1", ["x"], "s") == fingerprint(
        ["transcripts:ok:same-content:file:///in/a.wav", "x"], "s"
    )
