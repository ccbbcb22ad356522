"""The per-decade checks accept "nothing found": a video with no speech and no on-screen text
has no search document, and search_documents' coverage check passes for it."""

import datetime as dt

from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.health import derived_health
from archive_pipeline.defs.search.checks import DOCUMENT_SOURCES

NOW = dt.datetime.now(dt.UTC)


def _row(table: str, uri: str, **values) -> dict:
    return {
        "row_id": f"{table}-{uri}",
        "decade": "1970s",
        "media_id": uri,
        "uri": uri,
        "cache_key": "k",
        "model_id": "m",
        "model_params": "{}",
        "pipeline_version": "t",
        "created_at": NOW,
        **values,
    }


def test_a_video_with_nothing_to_index_is_not_reported_missing(tmp_path):
    wh = Warehouse(str(tmp_path / "wh"))
    scope = {"decade": "1970s"}
    keyframe = {"keyframe_index": 0, "shot_index": 0, "time_s": 1.0, "frame_index": 25}
    keyframe |= {"phash": "0", "thumbnail": b"", "thumbnail_format": "webp", "replaces": []}
    keyframe |= {"thumbnail_width": 1, "thumbnail_height": 1}
    # two silent videos with keyframes; one shows text, which has no document yet
    for uri in ("file:///silent.mp4", "file:///titled.mp4"):
        wh.upsert("keyframes", [_row("keyframes", uri, **keyframe)], scope=scope)
    line = {"keyframe_id": "k", "keyframe_index": 0, "shot_index": 0, "time_s": 1.0}
    line |= {"line_index": 0, "text": "KINO", "confidence": 0.9, "box": [0.0] * 8, "language": "de"}
    line |= {"normalised": "KINO", "script": "Latin"}
    wh.upsert("frame_text", [_row("frame_text", "file:///titled.mp4", **line)], scope=scope)
    health = derived_health(wh, asset="search_documents", decade="1970s", sources=DOCUMENT_SOURCES)
    assert [p.uri for p in health.missing] == ["file:///titled.mp4"]


def test_one_check_runs_alone_for_a_decade_without_materialising(tmp_path, shared_media):
    """The UI's Execute button on one check (and `archive-pipeline check`): a run of that
    check alone, over the committed rows; the asset is not materialised again."""
    import dagster as dg

    from archive_pipeline.defs.catalog.assets import media_catalog
    from archive_pipeline.defs.catalog.checks import media_catalog_checks
    from archive_pipeline_tests.helpers import catalog_one_file, local_resources

    instance = dg.DagsterInstance.ephemeral()
    assert catalog_one_file(tmp_path, shared_media, instance).success
    key = dg.AssetCheckKey(dg.AssetKey("media_catalog"), "unique_rows")
    assert media_catalog_checks.can_subset
    job = dg.Definitions(
        assets=[media_catalog],
        asset_checks=[media_catalog_checks],
        jobs=[dg.define_asset_job("recheck", selection=dg.AssetSelection.checks(key))],
        resources=local_resources(tmp_path / "inbox", tmp_path / "wh"),
    ).resolve_job_def("recheck")
    # the decade by tag, as the UI's Execute button launches it (no asset in the selection)
    result = job.execute_in_process(tags={"dagster/partition": "1960s"}, instance=instance)
    (evaluation,) = result.get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.passed) == ("unique_rows", True)
    assert not result.get_asset_materialization_events()
    # without a decade (the UI's "Execute all"): a failure that says how to check a decade
    from archive_pipeline.defs.runs import run_failures

    nowhere = job.execute_in_process(instance=instance, raise_on_error=False)
    (reason,) = run_failures(nowhere)
    assert "archive-pipeline check --decade D" in reason
