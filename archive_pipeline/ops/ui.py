"""`dagster dev` (webserver + daemon) on 127.0.0.1, driven through Dagster's GraphQL API: the
calls the UI's buttons make. Used by `make screenshot` and by the tests of the UI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LOCATION = "archive_pipeline"
REPOSITORY = "__repository__"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


STOP_GRACE_S = 10.0  # what `dagster dev` gets to stop on SIGTERM before its group is killed


def _group_alive(group: int) -> bool:
    """Whether a process of this process group still runs (zombies count as gone)."""
    import psutil

    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error):
            if os.getpgid(process.pid) == group and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def stop_group(process: subprocess.Popen | None, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group that `process` leads; SIGKILL what is left after `grace_s`.
    Returns once none of the group runs."""
    if process is None:
        return
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group_alive(group) and time.monotonic() < deadline:
        process.poll()  # reap the leader itself
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)


def serve(port: int, *, warm_workers: bool = True) -> int:
    """`archive-pipeline ui`: the warm model workers (`archive-pipeline workers`) and `dagster
    dev` (webserver + daemon) on 127.0.0.1 until SIGTERM, SIGINT (Ctrl-C) or SIGHUP, which stop
    both process groups within STOP_GRACE_S (then SIGKILL): nothing is left running. The exit
    status: 0 when stopped by a signal."""
    import threading

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopping.set())
    from archive_pipeline.config import settings

    env = settings.environment()
    dev = DagsterDev(port=port, env=env, log_path=None)
    service = WorkerService(env=env) if warm_workers else None
    ready = False
    try:
        if service is not None:
            service.start()
        dev.start(wait=False)
        while not stopping.is_set() and dev.process.poll() is None:
            if not ready:
                with contextlib.suppress(OSError, DagsterUIError):
                    ready = dev.location_status() == "LOADED"
                if ready:
                    print(
                        f"Dagster UI and daemon ready: {dev.base} (Ctrl-C stops both)", flush=True
                    )
            stopping.wait(1.0)
    finally:
        dev.stop()
        if service is not None:
            service.stop()
    return 0 if stopping.is_set() else 1


class WorkerService:
    """`archive-pipeline workers` (the warm model workers, core.workers) in its own process
    group, stopped by PID like `dagster dev`."""

    def __init__(self, *, env: dict[str, str], log_path: Path | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it; it announces itself on this console (or in `log_path`) once ready."""
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(open(self.log_path, "ab")) if self.log_path else None
            self.process = subprocess.Popen(
                [sys.executable, "-m", "archive_pipeline.ops.cli", "workers"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                start_new_session=True,
            )

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the service, its Ray and every warm worker: SIGTERM to the service first (it
        stops its workers and Ray), then to what is left of its group, SIGKILL after
        `grace_s`. The workers (their own groups) exit with Ray's raylet."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        stop_group(self.process, grace_s)


class DagsterUIError(RuntimeError):
    """The webserver answered with an error, or did not answer in time."""


class DagsterDev:
    """Starts `dagster dev -h 127.0.0.1` against `env`'s DAGSTER_HOME and stops it by PID."""

    def __init__(self, *, port: int, env: dict[str, str], log_path: Path | None) -> None:
        self.port = port
        self.env = env
        self.log_path = log_path
        self.base = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> DagsterDev:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 180, *, wait: bool = True) -> None:
        """Start webserver and daemon; return once the code location has loaded (at once
        without `wait`). Their output goes to `log_path`, or to this console when None."""
        dagster = Path(sys.executable).parent / "dagster"
        workspace = str(REPO / "workspace.yaml")
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(open(self.log_path, "ab")) if self.log_path else None
            self.process = subprocess.Popen(
                [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(self.port), "-w", workspace],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                start_new_session=True,  # its own process group: stop() ends every child
            )
        if not wait:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DagsterUIError(f"dagster dev exited: see {self.log_path}")
            try:
                if self.location_status() == "LOADED":
                    return
            except (OSError, DagsterUIError):
                pass
            time.sleep(1.0)
        raise DagsterUIError(f"dagster dev not ready within {timeout_s:.0f} s: {self.log_path}")

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the process group (webserver, daemon, code servers, run workers); SIGKILL
        what is left after `grace_s`. Returns once none of them runs."""
        stop_group(self.process, grace_s)

    def pids(self) -> set[int]:
        """The process group's PIDs (for the loopback check)."""
        import psutil

        if self.process is None:
            return set()
        root = psutil.Process(self.process.pid)
        return {root.pid} | {p.pid for p in root.children(recursive=True)}

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL query; return its data (raise on GraphQL errors)."""
        request = urllib.request.Request(
            f"{self.base}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise DagsterUIError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def location_status(self) -> str | None:
        """LOADING / LOADED of the archive_pipeline code location (raises on a load error)."""
        data = self.graphql(
            """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                 locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        )
        for entry in data["workspaceOrError"]["locationEntries"]:
            if entry["name"] == LOCATION:
                error = entry["locationOrLoadError"] or {}
                if error.get("__typename") == "PythonError":
                    raise DagsterUIError(f"code location failed to load: {error['message']}")
                return entry["loadStatus"]
        return None

    def set_nux_seen(self) -> None:
        """Dismiss the community pop-up that covers the page on a fresh instance."""
        self.graphql("mutation { setNuxSeen }")

    def asset_checks(self, assets: list[str]) -> list[dict[str, Any]]:
        """The checks of these assets, as GraphQL check selectors."""
        nodes = self.graphql(
            """query($location: String!, $repository: String!) {
                 repositoryOrError(repositorySelector: {repositoryLocationName: $location,
                                                        repositoryName: $repository}) {
                   ... on Repository { assetNodes { assetKey { path }
                                                    assetChecksOrError { ... on AssetChecks {
                                                      checks { name } } } } } } }""",
            {"location": LOCATION, "repository": REPOSITORY},
        )["repositoryOrError"]["assetNodes"]
        return [
            {"assetKey": {"path": node["assetKey"]["path"]}, "name": check["name"]}
            for node in nodes
            if node["assetKey"]["path"] in [[a] for a in assets]
            for check in node["assetChecksOrError"].get("checks", [])
        ]

    def launch(
        self,
        assets: list[str],
        checks: list[dict[str, Any]],
        *,
        partition: str | None = None,
    ) -> str:
        """Launch a run of these assets and checks (for one partition), tagged as the UI's
        buttons tag theirs; return its run id."""
        tags = [{"key": "dagster/from_ui", "value": "true"}]
        if partition is not None:
            tags.append({"key": "dagster/partition", "value": partition})
        result = self.graphql(
            """mutation($params: ExecutionParams!) {
                 launchPipelineExecution(executionParams: $params) {
                   __typename
                   ... on LaunchRunSuccess { run { runId } }
                   ... on PythonError { message }
                   ... on RunConfigValidationInvalid { errors { message } }
                   ... on InvalidSubsetError { message } } }""",
            {
                "params": {
                    "selector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": REPOSITORY,
                        "pipelineName": "__ASSET_JOB",
                        "assetSelection": [{"path": [a]} for a in assets],
                        "assetCheckSelection": checks,
                    },
                    "mode": "default",
                    "runConfigData": {},
                    "executionMetadata": {"tags": tags},
                }
            },
        )["launchPipelineExecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise DagsterUIError(f"launch failed: {result}")
        return result["run"]["runId"]

    def materialize(self, assets: list[str], *, partition: str) -> str:
        """Launch a run of these assets (and their checks) for one partition, as the
        Materialize button does; return its run id."""
        return self.launch(assets, self.asset_checks(assets), partition=partition)

    def execute_check(self, asset: str, check: str, *, partition: str) -> str:
        """Launch one check alone for one partition, as a check's Execute button does."""
        selector = {"assetKey": {"path": [asset]}, "name": check}
        return self.launch([], [selector], partition=partition)

    def observe(self, assets: list[str]) -> str:
        """Observe source assets, as the 'Observe sources' button does; return the run id."""
        return self.launch(assets, [])

    def decades(self) -> list[str]:
        """The decade partitions the UI offers (the decades with media)."""
        data = self.graphql(
            """query($location: String!, $repository: String!) {
                 repositoryOrError(repositorySelector: {repositoryLocationName: $location,
                                                        repositoryName: $repository}) {
                   ... on Repository { assetNodes { assetKey { path } partitionKeys } } } }""",
            {"location": LOCATION, "repository": REPOSITORY},
        )["repositoryOrError"]["assetNodes"]
        node = next(n for n in data if n["assetKey"]["path"] == ["media_catalog"])
        return node["partitionKeys"]

    def run_status(self, run_id: str) -> str:
        """QUEUED, STARTING, STARTED, SUCCESS, FAILURE, ..."""
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )
        return data["runOrError"]["status"]

    def wait_for_run(self, run_id: str, *, timeout_s: float = 300) -> str:
        """Wait until the run finishes; return its final status."""
        deadline = time.monotonic() + timeout_s
        status = self.run_status(run_id)
        while status not in FINISHED and time.monotonic() < deadline:
            time.sleep(1.0)
            status = self.run_status(run_id)
        return status

    def runs(self, tag: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Recent runs (id, status, tags), optionally with one tag."""
        run_filter = {"tags": [{"key": tag[0], "value": tag[1]}]} if tag else {}
        data = self.graphql(
            """query($filter: RunsFilter) { runsOrError(filter: $filter, limit: 50) {
                 ... on Runs { results { runId status tags { key value } } } } }""",
            {"filter": run_filter},
        )
        return data["runsOrError"]["results"]

    def _sensor(self, name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }

    def set_sensor_cursor(self, name: str, cursor: str) -> None:
        """Set a sensor's cursor (the UI's 'Edit cursor')."""
        self.graphql(
            """mutation($s: SensorSelector!, $c: String) { setSensorCursor(sensorSelector: $s,
                 cursor: $c) { __typename } }""",
            {"s": self._sensor(name), "c": cursor},
        )

    def start_sensor(self, name: str) -> None:
        """Switch a sensor on (the UI's toggle)."""
        result = self.graphql(
            """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {
                 __typename ... on PythonError { message } } }""",
            {"s": self._sensor(name)},
        )["startSensor"]
        if result["__typename"] != "Sensor":
            raise DagsterUIError(f"could not start {name}: {result}")

    def sensor_ticks(self, name: str) -> list[dict[str, Any]]:
        """The sensor's recent ticks: status, run ids, skip reason, error."""
        data = self.graphql(
            """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
                 ... on Sensor { sensorState { ticks(limit: 10) {
                   status runIds skipReason error { message } } } } } }""",
            {"s": self._sensor(name)},
        )
        return data["sensorOrError"]["sensorState"]["ticks"]

    def backfills(self) -> list[dict[str, Any]]:
        """Recent backfills: id, status, partitions, tags."""
        data = self.graphql(
            """{ partitionBackfillsOrError(limit: 10) { ... on PartitionBackfills { results {
                 id status numPartitions tags { key value } } } } }"""
        )
        return data["partitionBackfillsOrError"]["results"]

    def wait_for(self, what: str, probe, *, timeout_s: float = 180, every_s: float = 2.0):
        """Poll `probe()` until it returns something truthy; raise after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(every_s)
        raise DagsterUIError(f"timed out waiting for {what}")
