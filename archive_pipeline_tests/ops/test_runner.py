"""`archive-pipeline run`: one's own archive, only the decades with media, progress, re-runs."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from archive_pipeline_tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def run(home: Path, *args: str, command: str = "run", **env: str) -> subprocess.CompletedProcess:
    """`archive-pipeline <command> <args>` on ARCHIVE_HOME `home`, on one Ray CPU."""
    return run_cli(home, command, *args, env_extra={"ARCHIVE_RAY_NUM_CPUS": "1", **env})


def test_run_remembers_its_inbox_reruns_compute_nothing_and_checks_alone(tmp_path):
    """`archive-pipeline run --inbox` over an archive of stills (catalogued, skipped by every
    model stage; in the run's process, no Ray: the first demo tests a cold run with models,
    Ray and what it leaves behind), then an unchanged run, a --rerun and a check."""
    inbox = tmp_path / "my_archive"  # not under ARCHIVE_HOME: given with --inbox
    (inbox / "1960s").mkdir(parents=True)
    Image.new("RGB", (64, 48), "teal").save(inbox / "1960s/harbour.png")
    Image.new("RGB", (64, 48), "navy").save(inbox / "press_photo_1984.jpg")
    home = tmp_path / "home"
    inline = {"ARCHIVE_RAY_ADDRESS": "inline"}
    first = run(home, "--inbox", str(inbox), **inline)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "running decades 1960s, 1980s" in out
    assert "media_catalog 1980s: 1/1 press_photo_1984.jpg ok in" in out  # per-item progress
    assert "1960s: ok in" in out and "1980s: ok in" in out
    assert "Ray: not used (ARCHIVE_RAY_ADDRESS=inline" in out
    # the closing hint opens the UI on this instance, with this inbox
    assert f"`ARCHIVE_HOME={home} ARCHIVE_INBOX={inbox} make ui`" in out
    unchanged = run(home, **inline)  # the inbox is remembered: no --inbox
    assert unchanged.returncode == 0, unchanged.stdout[-3000:] + unchanged.stderr[-3000:]
    assert f"inbox: {inbox} (the one this warehouse was built from" in unchanged.stdout
    for decade in ("1960s", "1980s"):  # same files, code and settings, and both ran clean
        assert f"{decade}: unchanged since run " in unchanged.stdout, unchanged.stdout
    assert "(2 unchanged, not run again)" in unchanged.stdout
    assert "--- 19" not in unchanged.stdout  # no Dagster run was launched

    second = run(home, "--rerun", **inline)  # through Dagster anyway: every stage finds its cache
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "running decades 1960s, 1980s" in second.stdout
    assert " to compute" in second.stdout
    for line in second.stdout.splitlines():
        if line.endswith(" to compute"):
            assert line.endswith(" 0 to compute"), line
    assert "0 item-stages computed" in second.stdout

    # one decade's checks alone, over the committed tables: nothing is materialised again
    checked = run(home, "--decade", "1960s", "--check", "unique_rows", command="check")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "1960s: ok in" in checked.stdout and "checks evaluated, 0 not passed" in checked.stdout

    os.environ["DAGSTER_HOME"], saved = str(home / "dagster_home"), os.environ["DAGSTER_HOME"]
    try:
        with dg.DagsterInstance.get() as instance:
            done = instance.get_materialized_partitions(dg.AssetKey("search_documents"))
            runs = instance.get_runs()
            decades = instance.get_dynamic_partitions("decades")
            check_run = runs[0]  # the newest
            materialized = instance.get_records_for_run(
                check_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
    finally:
        os.environ["DAGSTER_HOME"] = saved
    assert done == {"1960s", "1980s"}
    assert decades == ["1960s", "1980s"]  # only the decades with media are partitions
    assert len(runs) == 5
    assert {r.tags["archive/trigger"] for r in runs[1:]} == {"archive-pipeline run"}
    assert check_run.tags["archive/trigger"] == "archive-pipeline check"
    assert not materialized


def test_run_rejects_an_unknown_decade_and_a_missing_inbox(tmp_path):
    result = run(tmp_path, "--decade", "1850s")
    assert result.returncode == 2 and "unknown decades ['1850s']" in result.stderr
    result = run(tmp_path)  # ARCHIVE_HOME/inbox was never made
    assert result.returncode == 2, result.stderr
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    result = run(tmp_path, "--inbox", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "is not a folder" in result.stderr


def test_a_run_left_started_by_a_killed_process_is_marked_failed():
    """kill -9 leaves a run STARTED; the next runner marks it failed (not a live one)."""
    from dagster._core.storage.dagster_run import DagsterRun

    from archive_pipeline.ops.runner import PROCESS_TAG, fail_abandoned_runs, process_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import psutil

    with dg.instance_for_test() as instance:
        gone = DagsterRun(
            job_name="__ASSET_JOB",
            run_id="dead0000",
            status=dg.DagsterRunStatus.STARTED,
            tags={PROCESS_TAG: process_tag(dead.pid, psutil.Process().create_time())},
        )
        live = DagsterRun(
            job_name="__ASSET_JOB",
            run_id="live0000",
            status=dg.DagsterRunStatus.STARTED,
            tags={PROCESS_TAG: process_tag()},
        )
        for run in (gone, live):
            instance.add_run(run)
        assert fail_abandoned_runs(instance) == ["dead0000"]
        assert instance.get_run_by_id("dead0000").status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id("live0000").status == dg.DagsterRunStatus.STARTED


def test_the_operations_benchmark_runs_in_its_quick_mode():
    """benchmarks/operations.py --quick: an unchanged run over 2 decades and a UI no-op run,
    each timed end to end, and its JSON line."""
    import json

    out = subprocess.run(
        [sys.executable, "benchmarks/operations.py", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])["this tree"]
    assert figures["decades"] == 2
    assert 0 < figures["unchanged_run_s"] < figures["cold_run_s"] + 60
    assert figures["ui_noop_run_s"] > 0


def _add_run(instance, decade: str, status, **tags: str) -> str:
    run = dg.DagsterRun(
        job_name="__ASSET_JOB",
        run_id=str(uuid.uuid4()),
        status=status,
        tags={"dagster/partition": decade, **{k.replace("__", "/"): v for k, v in tags.items()}},
    )
    instance.add_run(run)
    return run.run_id


def test_a_decade_is_skipped_only_while_its_latest_run_finished_clean_from_the_same_inputs():
    from archive_pipeline.ops.runner import unchanged_run

    ok = dg.DagsterRunStatus.SUCCESS
    with dg.DagsterInstance.ephemeral() as instance:
        clean = _add_run(instance, "1960s", ok, archive__inputs="abc")
        _add_run(instance, "1970s", ok)  # another decade's run changes nothing here
        assert unchanged_run(instance, "1960s", "abc").run_id == clean
        assert unchanged_run(instance, "1960s", "other") is None  # files, code or settings
        assert unchanged_run(instance, "1970s", "abc") is None  # never ran clean from inputs
        _add_run(instance, "1960s", ok, archive__trigger="archive-pipeline check")
        assert unchanged_run(instance, "1960s", "abc").run_id == clean  # checks write nothing
        _add_run(instance, "1960s", ok, archive__trigger="Dagster UI")  # a later run, untagged
        assert unchanged_run(instance, "1960s", "abc") is None
        _add_run(instance, "1960s", dg.DagsterRunStatus.FAILURE, archive__inputs="abc")
        assert unchanged_run(instance, "1960s", "abc") is None


def test_the_inputs_of_a_decade_follow_its_files_and_the_settings(monkeypatch):
    from archive_pipeline.ops.runner import decade_inputs

    before = decade_inputs({"1960s": "d1", "1970s": "d2"}, ["1960s", "1970s", "1980s"])
    assert len(set(before.values())) == 3  # each decade its own (1980s has no media)
    again = decade_inputs({"1960s": "d1", "1970s": "changed"}, ["1960s", "1970s"])
    assert again["1960s"] == before["1960s"] and again["1970s"] != before["1970s"]
    monkeypatch.setenv("ARCHIVE_WHISPER_MODEL", "small")
    assert decade_inputs({"1960s": "d1"}, ["1960s"])["1960s"] != before["1960s"]
    monkeypatch.delenv("ARCHIVE_WHISPER_MODEL")
    monkeypatch.setenv("ARCHIVE_VERBOSE", "1")  # the console's verbosity is not an input
    assert decade_inputs({"1960s": "d1"}, ["1960s"])["1960s"] == before["1960s"]
