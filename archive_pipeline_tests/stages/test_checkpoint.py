"""Checkpointed partitions: batches committed as items finish, a killed run resumes from the
ledger (nothing lost, nothing duplicated), stale rows removed by key, writes follow the change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from archive_pipeline.core.compute import InlineCompute, StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.stages.base import BaseStage, CatalogItem
from archive_pipeline.stages.partition import process_partition
from archive_pipeline.stages.writer import CommitPolicy


class Turns(BaseStage):
    """Test stage: two speaker turns per item; sleeps `delay` s; appends each call to `calls`;
    item `crash_on` ends the whole process (like kill -9) unless `crash_on` is empty."""

    name = "speaker_turns"
    tables = ("speaker_turns",)
    code_version = "test"
    model_id = "test"
    resources = StageResources(num_cpus=1, max_actors=1)

    def __init__(self, calls: str, *, delay: float = 0.0, turns: int = 2, version: str = "1"):
        self.calls, self.delay, self.turns = calls, delay, turns
        self.params = {"version": version}

    def setup(self):
        pass

    def process(self, item):
        time.sleep(self.delay)
        with open(self.calls, "a") as f:
            f.write(item.store_key + "\n")
        return {"n": self.turns}

    def content_id(self, item):
        return item.sha256

    def rows(self, item, value, *, decade):
        return {
            "speaker_turns": [
                {
                    "row_id": row_id("speaker_turns", item.uri, str(i)),
                    "decade": decade,
                    "media_id": item.media_id,
                    "uri": item.uri,
                    "turn_index": i,
                    "start_s": float(i),
                    "end_s": i + 1.0,
                    "speaker": f"S{i}",
                }
                for i in range(value["n"])
            ]
        }


class Interrupted(BaseException):
    """Escapes errors-as-data like a kill: the run stops where it is."""


class Crashes(Turns):
    def __init__(self, calls, crash_on, **kw):
        super().__init__(calls, **kw)
        self.crash_on = crash_on

    def process(self, item):
        if item.store_key == self.crash_on:
            raise Interrupted()
        return super().process(item)


def _items(n: int) -> list[CatalogItem]:
    return [
        CatalogItem(f"file:///in/{i:03d}.wav", f"{i:03d}.wav", f"m{i}", f"sha{i}", 3.0)
        for i in range(n)
    ]


def _calls(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_batches_commit_as_items_finish_and_an_interrupted_run_resumes(tmp_path):
    wh = Warehouse(str(tmp_path / "wh"))
    calls = tmp_path / "calls.txt"
    items = _items(10)
    with pytest.raises(Interrupted):  # the 8th item "kills" the run: 7 done, 6 committed
        process_partition(
            stage=Crashes(str(calls), "007.wav"),
            decade="1980s",
            items=items,
            warehouse=wh,
            compute=InlineCompute(),
            policy=CommitPolicy(items=3),
        )
    ledger = wh.read("stage_items", {"decade": "1980s", "stage": "speaker_turns"})
    assert ledger.num_rows == 6 and set(ledger.column("status").to_pylist()) == {"ok"}
    assert wh.count("speaker_turns", {"decade": "1980s"}) == 12  # 2 turns x 6 items
    calls.unlink()
    report = process_partition(
        stage=Turns(str(calls)),
        decade="1980s",
        items=items,
        warehouse=wh,
        compute=InlineCompute(),
        policy=CommitPolicy(items=3),
    )
    assert sorted(_calls(calls)) == [f"{i:03d}.wav" for i in range(6, 10)]  # the lost batch
    assert (report.n_reused, report.n_computed, report.batches) == (6, 4, 2)
    turns = wh.read("speaker_turns", {"decade": "1980s"})
    assert turns.num_rows == 20 and pc.count_distinct(turns.column("row_id")).as_py() == 20
    assert report.write.rows == 20 and len(report.cache_keys) == 10


def _shared(items: list[CatalogItem], content: dict[int, str]) -> list[CatalogItem]:
    """The items, item i given the content `content[i]` (the same text in two recordings)."""
    return [
        CatalogItem(it.uri, it.store_key, it.media_id, content.get(i, it.sha256), 3.0)
        for i, it in enumerate(items)
    ]


def test_items_with_the_same_content_each_get_rows_and_the_content_is_computed_once(tmp_path):
    wh = Warehouse(str(tmp_path / "wh"))
    calls = tmp_path / "calls.txt"
    items = _shared(_items(5), {1: "same", 2: "same", 3: "same"})
    report = process_partition(
        stage=Turns(str(calls)),
        decade="1980s",
        items=items,
        warehouse=wh,
        compute=InlineCompute(),
        policy=CommitPolicy(items=2),
    )
    assert len(_calls(calls)) == 3  # 000, one of 001-003, 004
    assert (report.n_computed, report.n_failed, len(report.cache_keys)) == (5, 0, 5)
    turns = wh.read("speaker_turns", {"decade": "1980s"})
    assert sorted(set(turns.column("media_id").to_pylist())) == [f"m{i}" for i in range(5)]
    assert turns.num_rows == 10
    scope = {"decade": "1980s", "stage": "speaker_turns"}
    assert wh.count("stage_items", scope) == 5
    # unchanged: nothing computed; item 2 leaves, item 3 gets new content: their rows under
    # the shared key go, item 1's stay
    calls.unlink()
    again = process_partition(
        stage=Turns(str(calls)),
        decade="1980s",
        items=items,
        warehouse=wh,
        compute=InlineCompute(),
        policy=CommitPolicy(items=2),
    )
    assert (again.n_reused, _calls(calls)) == (5, [])
    changed = _shared(_items(5), {1: "same", 3: "other"})
    changed = [it for i, it in enumerate(changed) if i != 2]
    process_partition(
        stage=Turns(str(calls)),
        decade="1980s",
        items=changed,
        warehouse=wh,
        compute=InlineCompute(),
        policy=CommitPolicy(items=2),
    )
    assert _calls(calls) == ["003.wav"]
    turns = wh.read("speaker_turns", {"decade": "1980s"})
    by_media = {}
    for media, key in zip(
        turns.column("media_id").to_pylist(), turns.column("cache_key").to_pylist(), strict=True
    ):
        by_media.setdefault(media, set()).add(key)
    assert sorted(by_media) == ["m0", "m1", "m3", "m4"] and turns.num_rows == 8
    assert all(len(keys) == 1 for keys in by_media.values()) and by_media["m1"] != by_media["m3"]
    ledger = wh.read("stage_items", scope)
    assert sorted(ledger.column("media_id").to_pylist()) == ["m0", "m1", "m3", "m4"]


def test_stale_rows_go_by_key_once_the_decade_is_complete(tmp_path):
    wh = Warehouse(str(tmp_path / "wh"))
    calls = str(tmp_path / "calls.txt")
    items = _items(5)
    process_partition(
        stage=Turns(calls),
        decade="1990s",
        items=items,
        warehouse=wh,
        compute=InlineCompute(),
        policy=CommitPolicy(items=2),
    )
    # one item leaves the decade, and a new stage configuration gives 1 turn per item
    report = process_partition(
        stage=Turns(calls, turns=1, version="2"),
        decade="1990s",
        items=items[:4],
        warehouse=wh,
        compute=InlineCompute(),
        policy=CommitPolicy(items=2),
    )
    rows = wh.read("speaker_turns", {"decade": "1990s"})
    assert rows.num_rows == 4 and set(rows.column("turn_index").to_pylist()) == {0}
    pairs = zip(rows.column("uri").to_pylist(), rows.column("cache_key").to_pylist(), strict=True)
    assert {f"{uri} {key}" for uri, key in pairs} == set(report.cache_keys)
    ledger = wh.read("stage_items", {"decade": "1990s", "stage": "speaker_turns"})
    assert ledger.num_rows == 4
    # the update rewrote 4 matched rows (key changed) and deleted 5 stale ones, no more
    assert (report.write.updated, report.write.deleted) == (4, 6)


def test_writes_follow_the_change_not_the_decade(tmp_path):
    wh = Warehouse(str(tmp_path / "wh"))
    decade = {"decade": "1970s"}
    rows = [
        {
            "row_id": f"r{i:05d}",
            "decade": "1970s",
            "cache_key": f"k{i}",
            "uri": f"file:///in/{i}.wav",
            "turn_index": 0,
            "start_s": 0.0,
            "end_s": 1.0,
            "speaker": "S0",
        }
        for i in range(5000)
    ]
    wh.replace("speaker_turns", rows, scope=decade)
    added = wh.replace("speaker_turns", [*rows, {**rows[0], "row_id": "new"}], scope=decade)
    assert (added.inserted, added.updated, added.deleted) == (1, 0, 0)
    changed = [{**rows[0], "speaker": "S9"}, *rows[1:]]
    write = wh.replace("speaker_turns", changed, scope=decade)
    assert (write.inserted, write.updated, write.deleted) == (0, 1, 1)  # "new" went
    assert not wh.replace("speaker_turns", changed, scope=decade).committed
    batch = wh.upsert("speaker_turns", [{**rows[1], "speaker": "S8"}], scope=decade)
    assert (batch.inserted, batch.updated, batch.rows) == (0, 1, 1)
    assert not wh.upsert("speaker_turns", [{**rows[1], "speaker": "S8"}], scope=decade).committed
    assert wh.count("speaker_turns", decade) == 5000


SCRIPT = """
import json, sys
from archive_pipeline.core.ray_runtime import RayRuntime
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.stages.partition import process_partition
from archive_pipeline.stages.writer import CommitPolicy
from archive_pipeline_tests.stages.test_checkpoint import Turns, _items

root, calls, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
wh = Warehouse(root)
runtime = RayRuntime("local", num_cpus=2)
report = process_partition(stage=Turns(calls, delay=0.4), decade="2000s", items=_items(n),
                           warehouse=wh, compute=runtime,
                           policy=CommitPolicy(items=4, seconds=3600))  # batches by items alone
print(json.dumps({"computed": report.n_computed, "reused": report.n_reused}))
runtime.shutdown()
"""


@pytest.mark.ray
@pytest.mark.slow
def test_kill_9_mid_decade_then_rerun_loses_and_duplicates_nothing(tmp_path):
    """A whole run killed with SIGKILL mid-decade: the re-run redoes at most the batch in flight,
    readers see whole committed batches throughout, and no Ray process outlives the run."""
    import psutil

    root, calls, n = str(tmp_path / "wh"), tmp_path / "calls.txt", 24
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, str(script), root, str(calls), str(n)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    wh = Warehouse(root)
    seen = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            turns = wh.read("speaker_turns", columns=["row_id"])
        except (ValueError, FileNotFoundError, OSError):
            time.sleep(0.2)  # not created yet
            continue
        seen.append(turns.num_rows)
        assert pc.count_distinct(turns.column("row_id")).as_py() == turns.num_rows
        if turns.num_rows >= n:  # about half the decade's turns (2 per item) are committed
            break
        time.sleep(0.2)
    tree = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert all(r % 8 == 0 for r in seen), f"a reader saw part of a batch: {seen}"
    computed_before = len(_calls(calls))
    # committed = in the ledger (written after the rows: a kill between the two leaves rows
    # whose item the re-run computes again, and overwrites by row_id)
    committed = wh.count("stage_items", {"decade": "2000s", "stage": "speaker_turns"})
    assert committed < n, "the run finished before it was killed"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in tree[1:]):
        time.sleep(0.5)
    left = [p for p in tree[1:] if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not left, f"processes outlived the killed run: {left}"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"computed": n - committed, "reused": committed}
    redone = computed_before - committed  # finished but not committed when killed
    assert redone <= 4 + 1, f"redid {redone} items: more than a batch and the one in flight"
    turns = wh.read("speaker_turns", {"decade": "2000s"})
    assert turns.num_rows == 2 * n
    assert pc.count_distinct(turns.column("row_id")).as_py() == 2 * n
