"""The Dagster UI as a user drives it: `dagster dev` (webserver + daemon) on 127.0.0.1, runs
launched through GraphQL (the Materialize button's call), the inbox sensor and the nightly
backfill switched on and ticking. The archive holds only stills (catalogued, then skipped by
the model stages), so the runs are quick."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from archive_pipeline.core.store import LocalStore, scan_inventory
from archive_pipeline.defs.automation.sensors import CURSOR_VERSION, decade_digests
from archive_pipeline.ui import DagsterDev
from archive_pipeline_tests.helpers import free_port, non_loopback_listeners

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def still(path: Path, colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), colour).save(path)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui_home")
    still(home / "inbox/1960s/harbour_photo.jpg", "navy")
    still(home / "inbox/scans/press_cutting_1975.png", "white")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    env |= {
        "ARCHIVE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        # what is tested here is the UI and the daemon; stills need no model, so the stages run
        # in the run's process (Ray's start would add ~10 s to each of the five runs)
        "ARCHIVE_RAY_ADDRESS": "inline",
    }
    (home / "dagster_home").mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster_home/dagster.yaml")
    # as `make ui` does: create the instance's storage before two processes race to
    subprocess.run(
        [sys.executable, "-c", "from archive_pipeline.runner import prepare_instance as p; p()"],
        env=env,
        check=True,
    )
    with DagsterDev(port=free_port(), env=env, log_path=home / "dagster_dev.log") as dev:
        yield dev, home


@contextlib.contextmanager
def instance(home: Path):
    """The instance the UI uses (dagster.yaml reads DAGSTER_HOME for its storage folder)."""
    saved = os.environ["DAGSTER_HOME"]
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    try:
        with dg.DagsterInstance.get() as inst:
            yield inst
    finally:
        os.environ["DAGSTER_HOME"] = saved


def test_materialize_button_run_succeeds_through_the_daemon(ui):
    dev, home = ui
    assert not non_loopback_listeners(dev.pids()), "dagster dev listens beyond 127.0.0.1"
    run_id = dev.materialize(["media_catalog"], partition="1960s")
    assert dev.wait_for_run(run_id) == "SUCCESS", (home / "dagster_dev.log").read_text()[-3000:]
    with instance(home) as inst:
        assert inst.get_materialized_partitions(dg.AssetKey("media_catalog")) >= {"1960s"}
        messages = [e.user_message for e in inst.all_logs(run_id)]
    assert any("media_catalog 1960s: 1/1 harbour_photo.jpg ok" in m for m in messages)
    assert any("Asset check 'rows_for_every_item'" in m for m in messages)


def test_inbox_sensor_ticks_and_requests_a_run_for_a_new_file(ui):
    dev, home = ui
    inbox = home / "inbox"
    # the cursor of a sensor that has seen the inbox as it is now
    digests = decade_digests(scan_inventory(LocalStore(root=str(inbox))))
    cursor = {"version": CURSOR_VERSION, "generation": 1, "decades": digests}
    dev.set_sensor_cursor("inbox_sensor", json.dumps(cursor, sort_keys=True))
    still(inbox / "1980s/new_poster.png", "red")
    dev.start_sensor("inbox_sensor")
    tick = dev.wait_for(
        "a tick that requests a run",
        lambda: next((t for t in dev.sensor_ticks("inbox_sensor") if t["runIds"]), None),
    )
    (run_id,) = tick["runIds"]
    (run,) = [r for r in dev.runs() if r["runId"] == run_id]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/partition"] == "1980s" and tags["archive/trigger"] == "inbox_sensor"
    assert dev.wait_for_run(run_id) == "SUCCESS"


def test_nightly_backfill_launches_one_backfill(ui):
    dev, home = ui
    inventory = scan_inventory(LocalStore(root=str(home / "inbox")))
    decades = sorted({item.decade for item in inventory.items})
    dev.set_sensor_cursor("nightly_backfill", "2000-01-01T02:00:00+00:00")  # last ran long ago
    dev.start_sensor("nightly_backfill")
    backfill = dev.wait_for(
        "the nightly backfill",
        lambda: next(
            (
                b
                for b in dev.backfills()
                if {"key": "archive/trigger", "value": "nightly_backfill"} in b["tags"]
            ),
            None,
        ),
    )
    runs = dev.wait_for(
        "the backfill's runs to finish",
        lambda: (
            (runs := dev.runs(("dagster/backfill", backfill["id"])))
            and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
            and len(runs) >= len(decades)
            and runs
        ),
        timeout_s=480,
        every_s=5,
    )
    partitions = sorted(
        next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition") for r in runs
    )
    assert partitions == decades  # the decades with media, one run (all assets) each
    assert {r["status"] for r in runs} == {"SUCCESS"}
