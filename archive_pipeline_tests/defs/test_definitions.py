"""The code location loads, with the resources the environment selects."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.core.s3_store import S3Store
from archive_pipeline.definitions import defs
from archive_pipeline.defs.resources import InboxMediaStore
from archive_pipeline.ops.runner import pipeline_job
from archive_pipeline_tests.helpers import REPO


def test_definitions_load_with_local_defaults():
    d = defs()
    assert {k.to_user_string() for k in d.resolve_all_asset_keys()} >= {"media_catalog"}
    # one job name for every run, whatever launched it: Dagster's asset job
    assert not [job.name for job in d.jobs or ()], "a second job name for the same runs"
    job = pipeline_job(d)
    assert job.name == "__ASSET_JOB" and job.partitions_def is not None
    assert dg.AssetKey("inbox") not in job.asset_layer.selected_asset_keys
    assert d.resolve_sensor_def("inbox_sensor").asset_selection is not None
    assert d.resolve_sensor_def("nightly_backfill").description.startswith("Nightly at 02:00")
    assert d.resolve_sensor_def("inbox_sensor").description
    # the UI's Materialize button and backfills run in one process too (Ray once per run)
    assert d.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    graph = d.resolve_asset_graph()
    checks = {k.to_user_string() for k in graph.asset_check_keys}
    # the inbox is the observable source at the top of the lineage; every table is partitioned
    # by decade, and decades are dynamic partitions (they appear with their media)
    assert not graph.get(dg.AssetKey("inbox")).is_materializable
    assert graph.get(dg.AssetKey("media_catalog")).parent_keys == {dg.AssetKey("inbox")}
    for asset in d.resolve_all_asset_specs():
        if asset.key == dg.AssetKey("inbox"):
            continue
        assert isinstance(asset.partitions_def, dg.DynamicPartitionsDefinition), asset.key
        assert f"{asset.key.to_user_string()}:rows_for_every_item" in checks
        assert "dagster/column_schema" in asset.metadata, asset.key
        if "ray" in asset.kinds:  # a stage asset: its failures have a check (and a threshold)
            assert f"{asset.key.to_user_string()}:failure_rate" in checks, asset.key
    assert isinstance(d.resources["media_store"], InboxMediaStore)
    assert isinstance(d.resources["media_store"].get_store(), LocalStore)


def test_s3_inbox_selects_the_s3_store_when_used(monkeypatch):
    resources = defs().resources  # loaded before the variable is set
    monkeypatch.setenv("ARCHIVE_INBOX", "s3://bucket/some/prefix")
    store = resources["media_store"].get_store()
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("bucket", "some/prefix")


def test_every_asset_and_resource_has_a_docstring():
    d = defs()
    for assets_def in d.resolve_all_asset_specs():
        assert assets_def.description, assets_def.key


@pytest.mark.slow
def test_dagster_definitions_validate(tmp_path):
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
