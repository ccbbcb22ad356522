"""The Dagster UI as a user drives it after `archive-pipeline run` (what `make demo` does):
`dagster dev` (webserver + daemon) on 127.0.0.1, pages in a real browser (Debian's chromium),
runs launched through GraphQL (the calls the UI's buttons make), the inbox sensor and the
nightly backfill switched on and ticking. The archive holds only stills (catalogued, then
skipped by the model stages), so the runs are quick."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from archive_pipeline.core.inventory import scan_inventory
from archive_pipeline.core.local_store import LocalStore
from archive_pipeline.ops.ui import DagsterDev
from archive_pipeline_tests.helpers import free_port, non_loopback_listeners

REPO = Path(__file__).resolve().parents[2]
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
    # what `make demo` does before `make ui`: the runner catalogues every decade with media
    cli = Path(sys.executable).parent / "archive-pipeline"
    ran = subprocess.run([cli, "run"], env=env, cwd=REPO, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    with DagsterDev(port=free_port(), env=env, log_path=home / "dagster_dev.log") as dev:
        dev.set_nux_seen()
        yield dev, home


@pytest.fixture(scope="module")
def browser():
    from archive_pipeline_tests.helpers import chromium_browser

    driver = chromium_browser()
    yield driver
    driver.quit()


def page_text(browser, url: str, expected: str) -> str:
    """The page's text once it shows `expected` (the UI renders after its queries return)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(lambda b: expected in b.find_element(By.TAG_NAME, "body").text)
    return browser.find_element(By.TAG_NAME, "body").text


def test_decades_follow_the_archive_no_decade_is_missing(ui, browser):
    dev, _ = ui
    assert dev.decades() == ["1960s", "1970s"]  # the decades with media, nothing else
    text = page_text(browser, f"{dev.base}/assets/media_catalog?view=partitions", "Missing (")
    assert "Missing (0)" in text and "Materialized (2)" in text, text[-1500:]


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
        tags = inst.get_run_by_id(run_id).tags
    # catalogued by `archive-pipeline run` before: a cache hit, said on the run's log
    assert any("media_catalog 1960s: 1 item(s), 1 unchanged (cached)" in m for m in messages)
    assert any("Asset check 'rows_for_every_item'" in m for m in messages)
    assert tags["archive/trigger"] == "Dagster UI"  # named on every run, whatever launched it
    assert tags["archive/worker"].split(" pid ")[0]  # the host; a readable tag, not internal


def test_one_check_runs_alone_for_one_decade(ui):
    """The launch of one check with a decade (what `archive-pipeline check` records too): the
    check reads the committed rows; nothing is materialised again."""
    dev, home = ui
    run_id = dev.execute_check("media_catalog", "unique_rows", partition="1960s")
    assert dev.wait_for_run(run_id) == "SUCCESS", (home / "dagster_dev.log").read_text()[-3000:]
    with instance(home) as inst:
        events = [e.dagster_event for e in inst.all_logs(run_id) if e.dagster_event]
    kinds = [e.event_type_value for e in events]
    assert "ASSET_MATERIALIZATION" not in kinds
    (evaluation,) = [e for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert evaluation.event_specific_data.check_name == "unique_rows"
    assert evaluation.event_specific_data.passed


def test_inbox_sensor_switched_on_after_a_run_requests_nothing_then_runs_a_new_file(ui):
    dev, home = ui
    dev.start_sensor("inbox_sensor")
    first = dev.wait_for(  # the first tick, once evaluated (a tick in progress is STARTED)
        "the sensor's first tick",
        lambda: [t for t in dev.sensor_ticks("inbox_sensor") if t["status"] != "STARTED"],
    )[-1]
    assert not first["runIds"], first  # every decade is as `archive-pipeline run` catalogued it
    assert "all as catalogued" in (first["skipReason"] or ""), first
    still(home / "inbox/1980s/new_poster.png", "red")
    tick = dev.wait_for(
        "a tick that requests a run",
        lambda: next((t for t in dev.sensor_ticks("inbox_sensor") if t["runIds"]), None),
        timeout_s=240,
    )
    (run_id,) = tick["runIds"]
    (run,) = [r for r in dev.runs() if r["runId"] == run_id]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/partition"] == "1980s" and tags["archive/trigger"] == "inbox_sensor"
    assert dev.wait_for_run(run_id) == "SUCCESS"
    assert dev.decades() == ["1960s", "1970s", "1980s"]  # the new decade is a partition


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


def test_archive_pipeline_ui_stops_everything_on_sigterm(ui):
    """What `make ui` runs: SIGTERM (or Ctrl-C) stops the webserver, the daemon, the code
    servers and the warm model workers (their Ray), and the command exits."""
    import signal
    import time

    import psutil

    _, home = ui
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    env |= {"ARCHIVE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
    cli = Path(sys.executable).parent / "archive-pipeline"
    with open(home / "ui_command.log", "w+") as log:
        command = subprocess.Popen(
            [cli, "ui", "--port", str(free_port())], env=env, cwd=REPO, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            text = (home / "ui_command.log").read_text()
            if "ready" in text and "warm model workers: Ray at" in text:
                break
            assert command.poll() is None, text[-2000:]
            time.sleep(1)
        started = {p.pid for p in psutil.Process(command.pid).children(recursive=True)}
        names = " ".join(psutil.Process(p).name() for p in started if psutil.pid_exists(p))
        assert len(started) >= 5  # dagster dev, webserver, daemon, the workers service, Ray
        assert "raylet" in names and "gcs_server" in names, names
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=60) == 0

    def running() -> list[int]:
        alive = [pid for pid in started if psutil.pid_exists(pid)]
        return [p for p in alive if psutil.Process(p).status() != psutil.STATUS_ZOMBIE]

    deadline = time.monotonic() + 20  # Ray's own workers exit once their raylet is gone
    while running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not running(), f"still running after SIGTERM: {running()}"
    assert not (home / "workers.json").exists()
