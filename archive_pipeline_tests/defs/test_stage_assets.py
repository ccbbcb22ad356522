"""A stage becomes an asset with its checks from one `stage_asset(...)` call: its items from
its declared inputs, its run, its materialisation and checks."""

import shutil

import pytest

from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.stage_assets import StageRun, stage_asset
from archive_pipeline.stages.base import BaseStage, catalog_items
from archive_pipeline_tests import helpers
from archive_pipeline_tests.helpers import local_resources


class OneTurn(BaseStage):
    """A toy stage: one speaker turn per item with audio, as long as the item."""

    name = "speaker_turns"
    tables = ("speaker_turns",)
    code_version = model_id = "toy"
    params: dict = {}
    resources = StageResources()

    @classmethod
    def select(cls, read):
        return catalog_items(read("media_catalog"), needs="audio")

    def setup(self):
        pass

    def process(self, item):
        return item.duration_s

    def content_id(self, item):
        return item.sha256

    def rows(self, item, value, *, decade):
        turn = {"turn_index": 0, "start_s": 0.0, "end_s": value, "speaker": "S0"}
        ids = {"row_id": row_id("toy", item.uri), "media_id": item.media_id, "uri": item.uri}
        return {"speaker_turns": [{**ids, "decade": decade, **turn}]}


def _describe(run: StageRun) -> dict:
    return {"files": len(run.items)}


toy, toy_checks = stage_asset(
    OneTurn, description="A toy.", group="toy", kinds={"lance"}, deps=[media_catalog],
    build=lambda resources: OneTurn(), describe=_describe,
)  # fmt: skip


@pytest.mark.slow
def test_a_stage_is_an_asset_with_its_checks_from_one_call(tmp_path, shared_media):
    inbox = tmp_path / "inbox"
    (inbox / "1960s").mkdir(parents=True)
    shutil.copyfile(shared_media / "speech/jfk.flac", inbox / "1960s/jfk.flac")
    shutil.copyfile(shared_media / "video/bikes.mp4", inbox / "1960s/bikes.mp4")  # no audio
    result = helpers.materialize(
        [media_catalog, toy, toy_checks],
        partition_key="1960s",
        resources=local_resources(inbox, tmp_path / "wh"),
    )
    assert result.success
    metadata = result.asset_materializations_for_node("speaker_turns")[0].metadata
    assert metadata["files"].value == 1 and "video without an audio stream" in str(
        metadata["skipped"].value
    )
    turns = Warehouse(str(tmp_path / "wh")).read("speaker_turns").to_pylist()
    assert [t["uri"].rsplit("/", 1)[-1] for t in turns] == ["jfk.flac"]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"failure_rate": True, "rows_for_every_item": True, "unique_rows": True}
