"""The plan of a stage run, decided without Lance or Ray: cached, lost, failed for good,
shared content, copied from elsewhere, what the sweep removes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from archive_pipeline.stages.base import ItemRef
from archive_pipeline.stages.ledger import FailureRow, LedgerRow, Prior
from archive_pipeline.stages.plan import plan_partition

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _refs(*names: str) -> list[ItemRef]:
    return [ItemRef(f"file:///in/{n}", n, f"m-{n}", 2.0) for n in names]


def _common(uri: str, key: str) -> dict:
    return {
        "row_id": f"r-{uri}",
        "decade": "1980s",
        "media_id": None,
        "cache_key": key,
        "model_id": "m",
        "model_params": "{}",
        "pipeline_version": "1",
        "created_at": NOW,
        "stage": "s",
        "uri": uri,
    }


def _entry(uri: str, key: str, status: str = "ok", n_rows: int = 2) -> LedgerRow:
    return LedgerRow(
        **_common(uri, key), status=status, n_rows=n_rows, compute_s=1.0, media_duration_s=2.0
    )


def _failure(uri: str, key: str, error_class: str) -> FailureRow:
    return FailureRow(**_common(uri, key), store_key=None, error_class=error_class, message="why")


def _prior(ledger=(), failures=(), lost=()) -> Prior:
    return Prior(
        ledger={e.pair: e for e in ledger},
        failures={f.signature: f for f in failures},
        lost=frozenset(lost),
    )


def test_a_fresh_decade_computes_each_content_once_and_each_uri_once():
    refs = _refs("a", "b", "c", "a")  # c has a's content; a is listed twice
    keys = ["k1", "k2", "k1", "k9"]
    plan = plan_partition(["A", "B", "C", "A2"], refs, keys, _prior())
    assert plan.n_listed_twice == 1 and plan.items == ("A", "B", "C")
    assert plan.todo == (0, 1, 2) and plan.units == (0, 1)
    assert plan.sharing == {"k1": (0, 2), "k2": (1,)}
    assert (plan.n_to_compute, plan.n_copied) == (3, 0)
    assert "3 item(s), 0 unchanged (cached), 3 to compute (2 distinct contents)" in plan.summary(
        "s", "1980s"
    )


def test_cached_items_are_not_done_again_unless_their_rows_are_lost():
    refs, keys = _refs("a", "b", "c"), ["k1", "k2", "k3"]
    ledger = [_entry(r.uri, k) for r, k in zip(refs, keys, strict=True)]
    plan = plan_partition(list("abc"), refs, keys, _prior(ledger))
    assert plan.todo == () and plan.unchanged()
    lost = plan_partition(list("abc"), refs, keys, _prior(ledger, lost=[plan.pair(1)]))
    assert lost.todo == (1,) and not lost.unchanged()
    assert lost.undone == {plan.pair(1)}


def test_a_permanent_failure_is_settled_and_a_transient_one_is_retried():
    refs, keys = _refs("a", "b"), ["k1", "k2"]
    ledger = [_entry(r.uri, k, "failed", 0) for r, k in zip(refs, keys, strict=True)]
    failures = [
        _failure(refs[0].uri, "k1", "EmptyFileError"),  # the same bytes fail the same way
        _failure(refs[1].uri, "k2", "WorkerCrashedError"),  # may work next time
    ]
    plan = plan_partition(list("ab"), refs, keys, _prior(ledger, failures))
    assert plan.settled == {plan.pair(0)} and plan.todo == (1,)
    assert "(1 failed for good: retried when they change)" in plan.summary("s", "1980s")
    # the settled item with a new key (changed bytes) is tried again
    again = plan_partition(list("ab"), refs, ["k1b", "k2"], _prior(ledger, failures))
    assert again.settled == frozenset() and again.todo == (0, 1)


def test_content_done_elsewhere_is_copied_for_every_item_that_shares_it():
    refs, keys = _refs("a", "b", "c"), ["k1", "k1", "k2"]
    plan = plan_partition(list("abc"), refs, keys, _prior())
    copied = plan.copying({"k1": ("1970s", "file:///old/a"), "k7": ("1970s", "x")})
    assert copied.copies == (0,) and copied.units == (2,)
    assert copied.elsewhere == {"k1": ("1970s", "file:///old/a")}
    assert (copied.n_copied, copied.n_to_compute) == (2, 1)
    assert "2 done in another decade (copied), 1 to compute" in copied.summary("s", "1980s")


def test_the_sweep_removes_changed_keys_and_uris_no_longer_listed():
    refs, keys = _refs("a", "b"), ["k1", "k2"]
    # before: a with an older key, b, and a file d (gone now) with b's content
    ledger = [_entry(refs[0].uri, "k0"), _entry(refs[1].uri, "k2"), _entry("file:///in/d", "k2")]
    plan = plan_partition(list("ab"), refs, keys, _prior(ledger))
    assert plan.todo == (0,) and not plan.unchanged()
    current, left = plan.stale()
    assert current == {"k1", "k2"} and left == [("file:///in/d", "k2")]
    # nothing to do, but an item gone from the listing: not unchanged (its rows go)
    gone = plan_partition(["b"], refs[1:], keys[1:], _prior(ledger[1:]))
    assert gone.todo == () and not gone.unchanged()


def test_the_plan_imports_neither_lance_nor_ray():
    code = (
        "import sys, archive_pipeline.stages.plan; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lancedb', 'lance', 'ray')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
