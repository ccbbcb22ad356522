"""process_partition keeps the tables trustworthy: one writer per scope (two processes at once
commit no duplicate), a moved file re-keyed without computing again, rows the ledger vouches
for rebuilt when lost, a damaged table named with its repair, the deletion guard."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest

from archive_pipeline.core.compute import InlineCompute
from archive_pipeline.core.guard import RemovalGuard, RemovalRefusedError
from archive_pipeline.core.repair import repair
from archive_pipeline.core.warehouse import DamagedTableError, Warehouse
from archive_pipeline.stages.base import CatalogItem
from archive_pipeline.stages.partition import process_partition
from archive_pipeline.stages.writer import CommitPolicy
from archive_pipeline_tests.stages.test_checkpoint import Turns, _calls, _items

DECADE = {"decade": "1980s"}
SCOPE = {"decade": "1980s", "stage": "speaker_turns"}


class CopyableTurns(Turns):
    """Turns that can be rebuilt from their rows (as the real stages can: `value_from_rows`)."""

    rebuilds_from_rows = True

    def value_from_rows(self, rows, item):
        return {"n": rows["speaker_turns"].num_rows}


def _run(wh: Warehouse, calls: Path, items, **kw):
    return process_partition(
        stage=CopyableTurns(str(calls)),
        decade="1980s",
        items=items,
        warehouse=wh,
        compute=InlineCompute(),
        **kw,
    )


def _distinct(wh: Warehouse, table: str, scope=None) -> tuple[int, int]:
    rows = wh.read(table, scope, columns=["row_id"]).column("row_id")
    return len(rows), pc.count_distinct(rows).as_py() if len(rows) else 0


WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from archive_pipeline.core.compute import InlineCompute
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.stages.partition import process_partition
    from archive_pipeline.stages.writer import CommitPolicy
    from archive_pipeline_tests.stages.test_checkpoint import Turns, _items

    trials, barrier, name = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    other = "dagster" if name == "cli" else "cli"
    for trial, (root, calls) in enumerate(trials):
        (barrier / f"{trial}.{name}").touch()
        while not (barrier / f"{trial}.{other}").exists():  # both start at the same moment
            time.sleep(0.005)
        wh = Warehouse(root, writer_wait_s=120, storage_options=options)
        report = process_partition(stage=Turns(calls, delay=0.05), decade="1980s",
                                   items=_items(12), warehouse=wh, compute=InlineCompute(),
                                   writer=name, policy=CommitPolicy(items=3))
        print(json.dumps([report.n_computed, report.n_reused]), flush=True)
    """
)


def _two_writers_at_once(tmp_path, trials: int, root_of, options: dict | None = None) -> None:
    """Two writers of the same (decade, stage), started together, `trials` times: the second
    waits for the first and finds everything done (no duplicate row_id in any table). Two
    processes run every trial, meeting at a file barrier before each (one Python start each)."""
    script, barrier = tmp_path / "writer.py", tmp_path / "barrier"
    script.write_text(WRITER)
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": ":".join(sys.path)}
    extra = [json.dumps(options)] if options else []
    runs = [(root_of(trial), str(tmp_path / f"calls{trial}.txt")) for trial in range(trials)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), json.dumps(runs), str(barrier), name, *extra],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("cli", "dagster")
    ]
    outs = [p.communicate(timeout=120 + 60 * trials)[0].splitlines() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    for trial, (root, calls) in enumerate(runs):
        # one computed all 12, the other waited and reused all 12
        pair = sorted(tuple(json.loads(out[trial])) for out in outs)
        assert pair == [(0, 12), (12, 0)], (trial, outs)
        wh = Warehouse(root, storage_options=options)
        for table, scope in (("speaker_turns", DECADE), ("stage_items", SCOPE)):
            n, distinct = _distinct(wh, table, scope)
            assert n == distinct and n > 0, (trial, table, n, distinct)
        assert len(_calls(Path(calls))) == 12  # each item computed once


@pytest.mark.slow
def test_two_processes_writing_one_decade_at_once_commit_no_duplicate(tmp_path):
    _two_writers_at_once(tmp_path, 6, lambda trial: str(tmp_path / f"wh{trial}"))


@pytest.mark.slow
@pytest.mark.s3
def test_two_writers_of_one_s3_warehouse_commit_no_duplicate(tmp_path, s3_endpoint):
    import boto3

    bucket = f"writers-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    options = {"aws_endpoint": s3_endpoint, "aws_region": "us-east-1", "allow_http": "true"}
    _two_writers_at_once(tmp_path, 3, lambda trial: f"s3://{bucket}/wh{trial}", options)


def test_a_moved_file_is_rekeyed_without_computing_again(tmp_path):
    wh, calls = Warehouse(str(tmp_path / "wh")), tmp_path / "calls.txt"
    items = _items(3)
    _run(wh, calls, items)
    moved = [
        CatalogItem("file:///in/tapes/001.wav", "tapes/001.wav", "m1", "sha1", 3.0)
        if item.store_key == "001.wav"
        else item
        for item in items
    ]
    calls.unlink()
    report = _run(wh, calls, moved)
    assert _calls(calls) == []  # nothing computed: the rows were copied under the new URI
    assert report.n_copied == 1
    uris = set(wh.read("speaker_turns", DECADE, columns=["uri"]).column("uri").to_pylist())
    assert uris == {"file:///in/000.wav", "file:///in/tapes/001.wav", "file:///in/002.wav"}
    ledger = set(wh.read("stage_items", SCOPE, columns=["uri"]).column("uri").to_pylist())
    assert ledger == uris
    assert _distinct(wh, "speaker_turns", DECADE) == (6, 6)


def test_rows_lost_from_a_table_are_computed_again(tmp_path):
    wh, calls = Warehouse(str(tmp_path / "wh")), tmp_path / "calls.txt"
    items = _items(4)
    _run(wh, calls, items)
    wh.delete_where("speaker_turns", DECADE, "uri = 'file:///in/002.wav'")  # a lost item
    calls.unlink()
    _run(wh, calls, items)
    assert _calls(calls) == ["002.wav"]
    assert _distinct(wh, "speaker_turns", DECADE) == (8, 8)
    shutil.rmtree(tmp_path / "wh" / "speaker_turns.lance")  # the whole table dropped
    calls.unlink()
    report = _run(wh, calls, items)
    assert sorted(_calls(calls)) == [f"{i:03d}.wav" for i in range(4)]
    assert report.n_computed == 4 and _distinct(wh, "speaker_turns", DECADE) == (8, 8)
    calls.unlink()
    assert _run(wh, calls, items).n_computed == 0 and _calls(calls) == []  # settled again


def test_a_lost_data_file_is_named_with_its_repair_which_rebuilds_the_rows(tmp_path):
    wh, calls = Warehouse(str(tmp_path / "wh")), tmp_path / "calls.txt"
    items = _items(6)
    _run(wh, calls, items, policy=CommitPolicy(items=2))  # three batches: several fragments
    data = sorted((tmp_path / "wh" / "speaker_turns.lance" / "data").glob("*.lance"))
    assert len(data) >= 2
    data[0].unlink()
    with pytest.raises(DamagedTableError) as error:
        _run(wh, calls, items, policy=CommitPolicy(items=2))
    message = str(error.value)
    assert "'speaker_turns'" in message
    assert "archive-pipeline repair --table speaker_turns" in message
    results = {r.table: r for r in repair(wh, ["speaker_turns", "stage_items"])}
    assert results["speaker_turns"].status == "fragments removed"
    assert results["speaker_turns"].rows_lost > 0 and results["stage_items"].status == "ok"
    calls.unlink()
    _run(wh, calls, items, policy=CommitPolicy(items=2))
    assert 0 < len(_calls(calls)) < 6  # only the items of the lost file
    assert _distinct(wh, "speaker_turns", DECADE) == (12, 12)


def test_the_deletion_guard_stops_a_run_that_would_empty_or_halve_a_decade(tmp_path):
    wh, calls = Warehouse(str(tmp_path / "wh")), tmp_path / "calls.txt"
    items = _items(4)
    _run(wh, calls, items)
    guard = RemovalGuard(max_fraction=0.5)
    with pytest.raises(RemovalRefusedError) as error:
        _run(wh, calls, [], removal_guard=guard)  # an empty listing
    message = str(error.value)
    assert "remove 4 of 4" in message and "lists no media" in message
    assert "--allow-removals" in message and "Nothing was removed" in message
    assert wh.count("speaker_turns", DECADE) == 8
    with pytest.raises(RemovalRefusedError, match="remove 3 of 4"):
        _run(wh, calls, items[:1], removal_guard=guard)
    assert wh.count("speaker_turns", DECADE) == 8
    _run(wh, calls, items[:2], removal_guard=guard)  # half: allowed
    assert wh.count("speaker_turns", DECADE) == 4
    _run(wh, calls, [], removal_guard=RemovalGuard(allow=True))  # explicit: allowed
    assert wh.count("speaker_turns", DECADE) == 0


def test_a_truncated_data_file_is_one_line_in_summary_and_search(tmp_path, monkeypatch, capsys):
    from archive_pipeline.ops.cli import main as pipeline_cli
    from archive_pipeline.search.cli import main as search_cli

    wh, calls = Warehouse(str(tmp_path / "wh")), tmp_path / "calls.txt"
    _run(wh, calls, _items(3))
    (data,) = (tmp_path / "wh" / "speaker_turns.lance" / "data").glob("*.lance")
    with open(data, "r+b") as handle:
        handle.truncate(data.stat().st_size // 2)
    with pytest.raises(DamagedTableError, match="truncated"):
        _run(wh, calls, _items(3))
    monkeypatch.setenv("ARCHIVE_WAREHOUSE", str(tmp_path / "wh"))
    capsys.readouterr()
    assert pipeline_cli(["summary"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'speaker_turns'" in err and "repair" in err
    assert (repair(wh, ["speaker_turns"])[0].status, wh.count("speaker_turns")) == (
        "fragments removed",
        0,
    )
    assert search_cli(["anything"]) in (0, 2)  # no traceback once repaired (an empty table)
