"""media_catalog through Dagster with local resources: rows, failures, cache, idempotence."""

import multiprocessing
import shutil

import dagster as dg
import pytest

from archive_pipeline.core.inventory import scan_inventory
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.catalog.checks import media_catalog_checks
from archive_pipeline.defs.checks import coverage_result
from archive_pipeline.defs.health import stage_health
from archive_pipeline.defs.resources import CheckSettings, LocalMediaStore
from archive_pipeline_tests import helpers
from archive_pipeline_tests.fixtures import small_archive
from archive_pipeline_tests.helpers import local_resources, snapshot_tree


@pytest.fixture
def archive(tmp_path, shared_media):
    inbox = tmp_path / "inbox"
    expected = small_archive(inbox, shared_media)
    return inbox, tmp_path / "warehouse", expected


def materialize(inbox, warehouse, partition, *, ray="inline", instance=None, max_fraction=0.5):
    return helpers.materialize(
        [media_catalog, media_catalog_checks],
        partition_key=partition,
        instance=instance,
        resources=local_resources(
            inbox,
            warehouse,
            ray=ray,
            check_settings=CheckSettings(max_failure_fraction=max_fraction),
        ),
    )


def checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def metadata(result):
    mat = result.asset_materializations_for_node("media_catalog")[0]
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def test_decade_is_catalogued_and_bad_files_recorded(archive):
    inbox, warehouse, _ = archive
    before = snapshot_tree(inbox)
    result = materialize(inbox, warehouse, "1990s")
    assert result.success
    md = metadata(result)
    assert (md["items"], md["failures"], md["video_files"], md["rows"]) == (4, 2, 2, 2)
    rows = {r["store_key"]: r for r in Warehouse(str(warehouse)).read("media_catalog").to_pylist()}
    assert set(rows) == {"tv/bikes_1994.mp4", "tv/decade=1990s/counter.mp4"}
    assert rows["tv/bikes_1994.mp4"]["decade_rule"] == "filename_year"
    assert rows["tv/decade=1990s/counter.mp4"]["decade_rule"] == "path_segment"
    assert rows["tv/bikes_1994.mp4"]["frame_count"] == 250
    assert len(rows["tv/bikes_1994.mp4"]["media_id"]) == 32
    failures = {r["store_key"]: r for r in Warehouse(str(warehouse)).read("failures").to_pylist()}
    assert failures["1990s/empty_transfer.wav"]["error_class"] == "EmptyFileError"
    assert failures["1990s/corrupt_tape.mp4"]["error_class"] == "ProbeError"
    assert "moov atom not found" in failures["1990s/corrupt_tape.mp4"]["message"]
    assert failures["1990s/corrupt_tape.mp4"]["media_id"]  # hashed before probing failed
    evaluations = checks(result)
    rate = evaluations["failure_rate"]
    assert not rate.passed and rate.severity == dg.AssetCheckSeverity.ERROR  # half failed
    assert rate.partition == "1990s"  # a per-decade check
    assert "corrupt_tape.mp4" in rate.metadata["failed_items"].value
    assert evaluations["rows_for_every_item"].passed
    assert snapshot_tree(inbox) == before, "the archive was modified"


def test_rerun_is_idempotent_and_reuses_the_cache(archive):
    inbox, warehouse, _ = archive
    materialize(inbox, warehouse, "1990s")
    wh = Warehouse(str(warehouse))
    first = wh.read("media_catalog").sort_by("row_id")
    first_failures = wh.read("failures").sort_by("row_id")
    versions = len(wh.table("media_catalog").list_versions())
    md = metadata(materialize(inbox, warehouse, "1990s"))
    # the corrupt and the empty file failed for good: not retried while they are unchanged
    assert (md["reused_from_cache"], md["computed"], md["committed"]) == (4, 0, False)
    assert md["failures"] == 2
    assert wh.read("media_catalog").sort_by("row_id").equals(first)
    assert wh.read("failures").sort_by("row_id").equals(first_failures)
    assert len(wh.table("media_catalog").list_versions()) == versions


def test_fixed_file_is_retried_and_leaves_failures(archive, shared_media):
    inbox, warehouse, _ = archive
    materialize(inbox, warehouse, "1990s")
    (inbox / "1990s/corrupt_tape.mp4").write_bytes((shared_media / "video/bikes.mp4").read_bytes())
    md = metadata(materialize(inbox, warehouse, "1990s"))
    # only the file that changed is read again; the empty one stays failed
    assert (md["computed"], md["failures"], md["rows"]) == (1, 1, 3)
    failures = Warehouse(str(warehouse)).read("failures").column("store_key").to_pylist()
    assert failures == ["1990s/empty_transfer.wav"]


def test_metadata_change_recomputes_only_that_item(archive):
    inbox, warehouse, _ = archive
    materialize(inbox, warehouse, "2000s")
    (inbox / "reading/librivox-0880.wav.json").write_text('{"year": 2005, "title": "New title"}')
    md = metadata(materialize(inbox, warehouse, "2000s"))
    assert (md["computed"], md["reused_from_cache"]) == (1, 0)
    row = Warehouse(str(warehouse)).read("media_catalog").to_pylist()[0]
    assert (row["title"], row["year"], row["speakers"]) == ("New title", 2005, [])


def test_item_moving_decade_leaves_the_old_decade(archive):
    inbox, warehouse, _ = archive
    materialize(inbox, warehouse, "2000s")
    (inbox / "reading/librivox-0880.wav.json").write_text('{"year": 1975}')
    materialize(inbox, warehouse, "1970s")
    materialize(inbox, warehouse, "2000s")
    rows = Warehouse(str(warehouse)).read("media_catalog").to_pylist()
    assert [(r["store_key"], r["decade"]) for r in rows] == [("reading/librivox-0880.wav", "1970s")]


@pytest.mark.ray
def test_catalog_through_ray(archive, ray_local):
    inbox, warehouse, _ = archive
    result = materialize(inbox, warehouse, "1990s", ray="local")
    assert result.success and metadata(result)["rows"] == 2


def _materialize_in_process(inbox, warehouse, decade) -> bool:
    return materialize(inbox, warehouse, decade).success


@pytest.mark.slow
def test_three_decades_concurrently_leave_every_row(archive):
    """Three runs (separate processes, like Dagster runs) commit three decades at once."""
    inbox, warehouse, expected = archive
    decades = ("1960s", "1990s", "2000s")
    pool = multiprocessing.get_context("spawn").Pool(3)
    try:
        results = pool.starmap(_materialize_in_process, [(inbox, warehouse, d) for d in decades])
    finally:
        # close, not terminate (the context manager's exit): a worker that ran a Dagster run
        # can ignore SIGTERM (seen once in CI: the three runs succeeded, then the pool's
        # terminate() waited for ever on one worker); closed workers leave on their own
        pool.close()
        pool.join()
    assert results == [True, True, True]
    rows = Warehouse(str(warehouse)).read("media_catalog").to_pylist()
    got = {r["store_key"]: r["decade"] for r in rows}
    good = {k: d for k, d in expected.items() if d in decades and not k.startswith("1990s/")}
    assert got == good
    failed = Warehouse(str(warehouse)).read("failures").column("store_key").to_pylist()
    assert sorted(failed) == ["1990s/corrupt_tape.mp4", "1990s/empty_transfer.wav"]


def test_failure_check_warns_on_one_failed_item_and_errors_from_the_threshold(archive, monkeypatch):
    inbox, warehouse, _ = archive
    (inbox / "1990s/empty_transfer.wav").unlink()  # leaves 1 failed item of 3
    rate = checks(materialize(inbox, warehouse, "1990s"))["failure_rate"]
    assert not rate.passed and rate.severity == dg.AssetCheckSeverity.WARN
    assert "1 of 3 items failed" in rate.description
    assert rate.metadata["failures"].value == 1
    assert "corrupt_tape.mp4" in rate.metadata["failed_items"].value
    rate = checks(materialize(inbox, warehouse, "1990s", max_fraction=0.25))["failure_rate"]
    assert not rate.passed and rate.severity == dg.AssetCheckSeverity.ERROR
    # a threshold of its own for this asset (another asset's does not apply)
    monkeypatch.setenv("ARCHIVE_MAX_FAILURE_FRACTIONS", '{"transcripts": 0.1}')
    rate = checks(materialize(inbox, warehouse, "1990s"))["failure_rate"]
    assert rate.severity == dg.AssetCheckSeverity.WARN and rate.metadata["threshold"].value == 0.5
    monkeypatch.setenv("ARCHIVE_MAX_FAILURE_FRACTIONS", '{"media_catalog": 0.3}')
    rate = checks(materialize(inbox, warehouse, "1990s"))["failure_rate"]
    assert rate.severity == dg.AssetCheckSeverity.ERROR and rate.metadata["threshold"].value == 0.3
    clean = checks(materialize(inbox, warehouse, "2000s"))
    assert clean["failure_rate"].passed and clean["rows_for_every_item"].passed


def test_coverage_check_reports_an_item_catalogued_since(archive, shared_media):
    """A file added after the catalog ran is missing until the decade runs again."""
    inbox, warehouse, _ = archive
    materialize(inbox, warehouse, "2000s")
    shutil.copyfile(shared_media / "speech/jfk.flac", inbox / "reading/jfk_2001.flac")
    # what the check step computes, read back from the committed tables
    store = LocalMediaStore(root=str(inbox)).get_store()
    health = stage_health(
        Warehouse(str(warehouse)),
        asset="media_catalog",
        stage="media_catalog",
        decade="2000s",
        expected=[item.uri for item in scan_inventory(store).for_decade("2000s")],
    )
    coverage = coverage_result(health)
    assert not coverage.passed and coverage.severity == dg.AssetCheckSeverity.ERROR
    assert "jfk_2001.flac" in coverage.metadata["missing_items"].value
    assert checks(materialize(inbox, warehouse, "2000s"))["rows_for_every_item"].passed


def test_table_metadata_keys(archive):
    inbox, warehouse, _ = archive
    materialize(inbox, warehouse, "2000s")
    md = metadata(materialize(inbox, warehouse, "1990s"))
    assert md["dagster/partition_row_count"] == 2  # the decade's rows
    assert md["dagster/row_count"] == 3  # the whole table
    assert md["dagster/table_name"] == "media_catalog"
    assert md["dagster/uri"] == f"{warehouse}/media_catalog.lance"
    assert md["lance_version"] >= 1
    columns = {c.name: c for c in md["dagster/column_schema"].columns}
    assert "decade" in columns and columns["decade"].description.startswith("Decade partition")
    assert md["preview"].splitlines()[0].startswith("| file |")
    spec = next(iter(media_catalog.specs))
    assert spec.metadata["dagster/column_schema"].columns[0].name == "row_id"
    assert spec.owners == ["team:archive-data"]


def test_another_or_empty_inbox_removes_nothing_without_the_flag(archive, tmp_path):
    """One warehouse pointed at another inbox (or an unmounted, empty folder): the decades
    the other inbox lacks are not deleted; the run fails saying what it would remove and
    why; with ARCHIVE_ALLOW_REMOVALS they go."""
    from archive_pipeline.defs.runs import run_failures

    inbox, warehouse, _ = archive
    assert materialize(inbox, warehouse, "1990s").success
    before = Warehouse(str(warehouse)).count("media_catalog", {"decade": "1990s"})
    other = tmp_path / "other"
    (other / "1950s").mkdir(parents=True)
    shutil.copyfile(inbox / "tv/bikes_1994.mp4", other / "1950s/bikes.mp4")
    result = helpers.materialize(
        [media_catalog],
        partition_key="1990s",
        resources=local_resources(other, warehouse),
        raise_on_error=False,
    )
    assert not result.success
    (reason,) = run_failures(result)
    assert reason.startswith("media_catalog: RemovalRefusedError: 1990s: this run would remove")
    assert "built from the inbox" in reason and "--allow-removals" in reason
    assert Warehouse(str(warehouse)).count("media_catalog", {"decade": "1990s"}) == before
    from archive_pipeline.defs.resources import LanceWarehouse

    allowed = {
        **local_resources(other, warehouse),
        "warehouse": LanceWarehouse(root=str(warehouse), allow_removals=True),
    }
    assert helpers.materialize([media_catalog], partition_key="1990s", resources=allowed).success
    assert Warehouse(str(warehouse)).count("media_catalog", {"decade": "1990s"}) == 0
