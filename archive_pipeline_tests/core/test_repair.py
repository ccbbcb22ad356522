"""`archive-pipeline repair`: duplicated rows (what two unguarded writers committed) are found
by the unique_rows check and reduced to one each; a table whose manifest is lost is set aside
and rebuilt by the next run."""

from __future__ import annotations

import shutil

from archive_pipeline.core.compute import InlineCompute
from archive_pipeline.core.repair import repair
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.health import duplicated_row_ids
from archive_pipeline.stages.partition import process_partition
from archive_pipeline_tests.stages.test_checkpoint import Turns, _calls, _items

DECADE = {"decade": "1980s"}


def _run(wh, calls, items):
    return process_partition(
        stage=Turns(str(calls)), decade="1980s", items=items, warehouse=wh, compute=InlineCompute()
    )


def test_duplicated_rows_are_found_and_reduced_to_one_each(tmp_path):
    wh, calls = Warehouse(str(tmp_path / "wh")), tmp_path / "calls.txt"
    _run(wh, calls, _items(3))
    stored = wh.read("speaker_turns", DECADE)
    wh.table("speaker_turns").add(stored.slice(0, 2))  # as a second, unguarded writer would
    assert len(duplicated_row_ids(wh, "speaker_turns", "1980s")) == 2
    results = repair(wh, ["speaker_turns"])
    assert [(r.status, r.detail) for r in results] == [
        ("ok", ""),
        ("duplicates removed", "2 duplicated rows"),
    ]
    assert duplicated_row_ids(wh, "speaker_turns", "1980s") == []
    assert wh.read("speaker_turns", DECADE).sort_by("row_id").equals(stored.sort_by("row_id"))


def test_a_table_whose_versions_are_lost_is_set_aside_and_rebuilt(tmp_path):
    wh, calls = Warehouse(str(tmp_path / "wh")), tmp_path / "calls.txt"
    _run(wh, calls, _items(3))
    shutil.rmtree(tmp_path / "wh" / "speaker_turns.lance" / "_versions")
    (tmp_path / "wh" / "speaker_turns.lance" / "_versions").mkdir()
    (result,) = repair(wh, ["speaker_turns"])
    assert result.status == "moved aside"
    assert list((tmp_path / "wh" / "_damaged").glob("speaker_turns-*.lance"))
    calls.unlink()
    _run(wh, calls, _items(3))
    assert sorted(_calls(calls)) == ["000.wav", "001.wav", "002.wav"]  # rebuilt from the ledger
    assert wh.count("speaker_turns", DECADE) == 6
