"""The local Dagster instance: created once and safely when processes start together on a new
DAGSTER_HOME (as `make ui`, `make demo` and `archive-pipeline run` may)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# Imports once, then per line read (a new home): prepares the instance there and uses it.
CHILD = """
import os, sys
import dagster as dg
from archive_pipeline.ops.runner import prepare_instance
print("ready", flush=True)
for line in sys.stdin:
    os.environ["DAGSTER_HOME"] = line.strip()
    try:
        prepare_instance()
        with dg.DagsterInstance.get() as instance:
            instance.get_runs_count()
            instance.get_latest_materialization_event(dg.AssetKey("media_catalog"))
        print("ok", flush=True)
    except Exception as exc:
        print(f"error {type(exc).__name__}: {exc}".replace(chr(10), " "), flush=True)
"""


def test_four_processes_starting_together_on_a_new_home_leave_it_usable(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    env |= {"ARCHIVE_HOME": str(tmp_path / "archive_home")}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        assert all(child.stdout.readline().strip() == "ready" for child in children)
        for attempt in range(5):  # four first starts at once, five times
            home = tmp_path / f"dagster_home{attempt}"
            for child in children:
                child.stdin.write(f"{home}\n")
                child.stdin.flush()
            answers = [child.stdout.readline().strip() for child in children]
            assert answers == ["ok"] * 4, f"attempt {attempt}: {answers}"
            children[0].stdin.write(f"{home}\n")  # and a later command finds it whole
            children[0].stdin.flush()
            assert children[0].stdout.readline().strip() == "ok"
    finally:
        for child in children:
            child.stdin.close()
            child.wait(timeout=60)


def test_a_second_run_of_one_decade_queues_while_other_decades_run(tmp_path, monkeypatch):
    """dagster.yaml's run queue: one run per decade (the dagster/partition tag that UI,
    sensor and backfill runs of a decade carry), checked with Dagster's own queue counter."""
    import shutil

    import dagster as dg
    from dagster._core.test_utils import create_run_for_test
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    shutil.copyfile(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        running = create_run_for_test(
            instance, job_name="__ASSET_JOB", tags={"dagster/partition": "1950s"}
        )
        same = create_run_for_test(
            instance, job_name="__ASSET_JOB", tags={"dagster/partition": "1950s"}
        )
        other = create_run_for_test(
            instance, job_name="__ASSET_JOB", tags={"dagster/partition": "1960s"}
        )
        counter = TagConcurrencyLimitsCounter(limits, [running])
        assert counter.is_blocked(same)
        assert not counter.is_blocked(other)
