"""The nightly's freshness, as Dagster's daemon evaluates it: search_documents written in the
night's window is fresh; a skipped night (simulated with Dagster's frozen clock) is overdue."""

import asyncio
import datetime as dt

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.definitions.freshness_evaluator import CronFreshnessPolicyEvaluator
from dagster._core.events import StepMaterializationData
from dagster._core.storage.dagster_run import make_new_run_id
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget

from archive_pipeline.defs.nightly import NIGHTLY_HOUR_UTC, NIGHTLY_WINDOW_H
from archive_pipeline_tests.helpers import REPO

pytestmark = pytest.mark.slow  # loads the code location in a gRPC server, as the daemon does
DOCUMENTS = dg.AssetKey("search_documents")


def written_at(instance, when: dt.datetime) -> None:
    """A materialisation of one decade of search_documents, stamped `when`."""
    materialization = dg.AssetMaterialization(asset_key=DOCUMENTS, partition="1960s")
    instance.store_event(
        dg.EventLogEntry(
            error_info=None,
            user_message="",
            level="debug",
            run_id=make_new_run_id(),
            timestamp=when.timestamp(),
            dagster_event=dg.DagsterEvent(
                dg.DagsterEventType.ASSET_MATERIALIZATION.value,
                "nightly",
                event_specific_data=StepMaterializationData(materialization=materialization),
            ),
        )
    )


def test_a_skipped_night_makes_search_documents_overdue(tmp_path):
    target = ModuleTarget(
        module_name="archive_pipeline.definitions",
        attribute="defs",
        working_directory=str(REPO),
        location_name="archive_pipeline",
    )
    night = dt.datetime(2026, 11, 21, NIGHTLY_HOUR_UTC, tzinfo=dt.UTC)
    deadline = night + dt.timedelta(hours=NIGHTLY_WINDOW_H)
    evaluator = CronFreshnessPolicyEvaluator()
    with (
        dg.instance_for_test(temp_dir=str(tmp_path)) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        node = workspace.create_request_context().asset_graph.remote_asset_nodes_by_key[DOCUMENTS]

        def state_at(now: dt.datetime) -> FreshnessState:
            with freeze_time(now):
                context = workspace.create_request_context()
                return asyncio.run(evaluator.evaluate_freshness(context=context, node=node))

        assert state_at(deadline) == FreshnessState.UNKNOWN  # never written
        written_at(instance, night + dt.timedelta(minutes=40))  # the nightly backfill ran
        assert state_at(deadline + dt.timedelta(hours=1)) == FreshnessState.PASS
        assert state_at(deadline + dt.timedelta(days=1) - dt.timedelta(minutes=1)) == (
            FreshnessState.PASS
        )
        # the next night did not happen: from its deadline on, overdue
        assert state_at(deadline + dt.timedelta(days=1, minutes=1)) == FreshnessState.FAIL
