"""Runs record the process executing them; the abandoned_runs sensor marks failed those whose
process died (a run worker killed with -9 stays STARTED with Dagster's default launcher)."""

import subprocess
import sys

import dagster as dg
import psutil
from dagster._core.storage.dagster_run import DagsterRun

from archive_pipeline.defs.automation.sensors import abandoned_runs
from archive_pipeline.defs.runs import PROCESS_TAG, process_tag
from archive_pipeline_tests.helpers import catalog_one_file


def test_a_run_records_the_process_that_executes_it(tmp_path, shared_media):
    with dg.instance_for_test() as instance:
        result = catalog_one_file(tmp_path, shared_media, instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).tags[PROCESS_TAG] == process_tag()


def test_the_sensor_marks_failed_a_run_whose_process_died_and_no_other():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with dg.instance_for_test() as instance:
        for run_id, tag in (
            ("dead0000", process_tag(dead.pid, psutil.Process().create_time())),
            ("live0000", process_tag()),
            ("elsewhere", process_tag(dead.pid, 1.0, host="another-host")),
        ):
            instance.add_run(
                DagsterRun(
                    job_name="__ASSET_JOB",
                    run_id=run_id,
                    status=dg.DagsterRunStatus.STARTED,
                    tags={PROCESS_TAG: tag},
                )
            )
        skip = abandoned_runs(dg.build_sensor_context(instance=instance))
        assert "dead0000" in skip.skip_message
        status = {
            r: instance.get_run_by_id(r).status for r in ("dead0000", "live0000", "elsewhere")
        }
        assert status == {
            "dead0000": dg.DagsterRunStatus.FAILURE,
            "live0000": dg.DagsterRunStatus.STARTED,
            "elsewhere": dg.DagsterRunStatus.STARTED,
        }
        again = abandoned_runs(dg.build_sensor_context(instance=instance))
        assert again.skip_message == "no run left by a dead process"
