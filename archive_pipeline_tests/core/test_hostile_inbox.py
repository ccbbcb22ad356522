"""An inbox as a careless archive holds it: links in and out, loops, folders and FIFOs named
like media, unreadable entries. Every bad entry is one failure row, the good files of every
decade are catalogued, the sensor's inventory does not fail, the inbox is not modified."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from archive_pipeline.core import local_store as store_module
from archive_pipeline.core.inventory import scan_inventory
from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline_tests.defs.test_catalog_assets import materialize
from archive_pipeline_tests.helpers import snapshot_tree

BAD = {
    "1980s/loop.mp4": "SymlinkLoop",
    "1980s/outside.mp4": "LinkOutsideStore",
    "1980s/dangling.wav": "DanglingLink",
    "1980s/folder.mp4": "NotAFile",
    "1980s/tape.fifo.mp3": "NotAFile",
    "1980s/socket.wav": "NotAFile",
    "1980s/locked.flac": "UnreadableEntry",
    "1980s/more": "LinkedFolder",
}


@pytest.fixture
def hostile(tmp_path, shared_media, monkeypatch):
    inbox = tmp_path / "inbox"
    (inbox / "1980s").mkdir(parents=True)
    (inbox / "1990s").mkdir()
    shutil.copyfile(shared_media / "speech/jfk.flac", inbox / "1980s/good.flac")
    shutil.copyfile(shared_media / "video/counter.mp4", inbox / "1980s/good.mp4")
    shutil.copyfile(shared_media / "video/counter.mp4", inbox / "1980s/locked.flac")
    shutil.copyfile(shared_media / "speech/jfk.flac", inbox / "1990s/good.flac")
    outside = tmp_path / "elsewhere.mp4"
    shutil.copyfile(shared_media / "video/counter.mp4", outside)
    os.symlink("loop.mp4", inbox / "1980s/loop.mp4")
    os.symlink(outside, inbox / "1980s/outside.mp4")
    os.symlink("gone.wav", inbox / "1980s/dangling.wav")
    os.symlink("good.flac", inbox / "1980s/alias.flac")  # the same file twice: catalogued once
    os.symlink("../1990s", inbox / "1980s/more")
    (inbox / "1980s/folder.mp4").mkdir()
    (inbox / "1980s/folder.mp4/notes.txt").write_text("not media")
    os.mkfifo(inbox / "1980s/tape.fifo.mp3")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(inbox / "1980s/socket.wav"))
    # root reads everything: an unreadable file is simulated where the store asks
    locked = str(inbox / "1980s/locked.flac")
    real_access = os.access
    monkeypatch.setattr(
        store_module.os,
        "access",
        lambda path, mode, **kw: False if str(path) == locked else real_access(path, mode, **kw),
    )
    yield inbox
    server.close()


def test_every_bad_entry_is_one_failure_and_good_files_of_every_decade_are_catalogued(
    hostile, tmp_path
):
    before = snapshot_tree(hostile)
    inventory = scan_inventory(LocalStore(str(hostile)))  # what the sensor lists: no error
    keys = {item.key: item for item in inventory.items}
    assert set(BAD) <= set(keys) and "1980s/alias.flac" not in keys
    assert keys["1980s/good.flac"].aliases == ("1980s/alias.flac",)
    warehouse = tmp_path / "warehouse"
    for decade in ("1980s", "1990s"):
        assert materialize(hostile, warehouse, decade).success
    wh = Warehouse(str(warehouse))
    rows = {r["store_key"]: r for r in wh.read("media_catalog").to_pylist()}
    assert set(rows) == {"1980s/good.flac", "1980s/good.mp4", "1990s/good.flac"}
    assert rows["1980s/good.flac"]["aliases"] == ["1980s/alias.flac"]
    assert rows["1980s/good.mp4"]["aliases"] is None
    failures = wh.read("failures").to_pylist()
    assert sorted(r["store_key"] for r in failures) == sorted(BAD)  # one row each
    assert {r["store_key"]: r["error_class"] for r in failures} == BAD
    assert all(r["decade"] == "1980s" for r in failures)
    assert snapshot_tree(hostile) == before, "the inbox was modified"


def test_an_unchanged_hostile_decade_is_not_recomputed(hostile, tmp_path):
    warehouse = tmp_path / "warehouse"
    materialize(hostile, warehouse, "1980s")
    again = materialize(hostile, warehouse, "1980s")
    mat = again.asset_materializations_for_node("media_catalog")[0]
    assert mat.metadata["failures"].value == len(BAD)
    assert Warehouse(str(warehouse)).count("failures") == len(BAD)


def test_several_links_to_one_place_are_one_entry_each(tmp_path):
    """`latest -> batch3` and `current -> batch3` (links to a folder), two dangling links to
    one missing name: one failure row per link, named by the link; the decade is not blocked
    and a second run settles (no duplicate row_id rejects the batch)."""
    inbox = tmp_path / "inbox"
    (inbox / "1980s/batch3").mkdir(parents=True)
    (inbox / "1980s/batch3/notes.txt").write_text("x")
    os.symlink("batch3", inbox / "1980s/latest")
    os.symlink("batch3", inbox / "1980s/current")
    os.symlink("missing.wav", inbox / "1980s/a.wav")
    os.symlink("missing.wav", inbox / "1980s/b.wav")
    warehouse = tmp_path / "warehouse"
    for _ in range(2):
        result = materialize(inbox, warehouse, "1980s")
        assert result.success
    failures = Warehouse(str(warehouse)).read("failures").to_pylist()
    got = {r["store_key"]: (r["error_class"], r["uri"].rsplit("/", 1)[-1]) for r in failures}
    assert got == {
        "1980s/latest": ("LinkedFolder", "latest"),
        "1980s/current": ("LinkedFolder", "current"),
        "1980s/a.wav": ("DanglingLink", "a.wav"),
        "1980s/b.wav": ("DanglingLink", "b.wav"),
    }
    ledger = Warehouse(str(warehouse)).read("stage_items").to_pylist()
    assert len(ledger) == 4 and len({r["row_id"] for r in ledger}) == 4
