"""Every failure says why on the console: a failed step's error class and message (not only
"FAILED"), a run's failure, a bad setting named before any work (resources and the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.console import progress_console
from archive_pipeline.defs.runs import run_failures
from archive_pipeline_tests.helpers import decade_instance, local_resources


def _job(inbox, warehouse):
    defs = dg.Definitions(
        assets=[media_catalog],
        jobs=[dg.define_asset_job("catalog_job", selection=[media_catalog])],
        loggers={"progress": progress_console},
        resources=local_resources(inbox, warehouse),
    )
    return defs.resolve_job_def("catalog_job")


def test_a_bad_setting_fails_the_run_naming_the_variable_on_the_console(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "inbox/1950s").mkdir(parents=True)
    monkeypatch.setenv("ARCHIVE_ITEM_TIMEOUT_S", "-5")
    result = _job(tmp_path / "inbox", tmp_path / "wh").execute_in_process(
        partition_key="1950s",
        instance=decade_instance("1950s"),
        run_config={"loggers": {"progress": {"config": {}}}},
        raise_on_error=False,
    )
    assert not result.success
    reasons = run_failures(result)
    assert reasons and "SettingError" in reasons[0]
    assert "ARCHIVE_ITEM_TIMEOUT_S='-5': must be > 0" in reasons[0]
    out = capsys.readouterr().out
    assert "ARCHIVE_ITEM_TIMEOUT_S='-5': must be > 0" in out  # not only "FAILED"
    assert not (tmp_path / "wh").exists()  # nothing was done


def test_a_failed_step_prints_its_error_class_and_message(tmp_path, capsys):
    inbox = tmp_path / "inbox"
    (inbox / "1950s").mkdir(parents=True)
    (inbox / "1950s/a.wav").write_bytes(b"")
    job = _job(inbox, tmp_path / "wh")
    config = {"loggers": {"progress": {"config": {}}}}
    run = {"partition_key": "1950s", "run_config": config, "instance": decade_instance("1950s")}
    assert job.execute_in_process(**run).success
    (inbox / "1950s/a.wav").unlink()  # the decade would go from 1 item to 0: refused
    result = job.execute_in_process(**run, raise_on_error=False)
    assert not result.success
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "FAILED step media_catalog" in line)
    assert "RemovalRefusedError: 1950s: this run would remove 1 of 1" in line


def test_the_cli_refuses_bad_settings_before_any_work(tmp_path):
    env = {
        **os.environ,
        "ARCHIVE_HOME": str(tmp_path),
        "ARCHIVE_RAY_NUM_CPUS": "two",
        "ARCHIVE_MAX_FAILURE_FRACTION": "1.5",
    }
    out = subprocess.run(
        [sys.executable, "-m", "archive_pipeline.ops.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "ARCHIVE_RAY_NUM_CPUS='two': expected int" in out.stderr
    assert "ARCHIVE_MAX_FAILURE_FRACTION='1.5': must be <= 1" in out.stderr
    assert not (tmp_path / "warehouse").exists()
