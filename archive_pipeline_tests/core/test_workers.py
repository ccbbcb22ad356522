"""Warm model workers: the registry's leases (alone), and runs in separate processes sharing
the model service's workers (real Ray)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive_pipeline.core import workers
from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.workers import ServiceInfo, WorkerRegistry, read_service

REPO = Path(__file__).resolve().parents[2]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_holds_its_workers_until_released_and_prefers_those_with_the_stage():
    registry = WorkerRegistry()
    first = registry.acquire("run-a", "cpu1", "code1", "transcripts:1", 2)
    assert first.reuse == [] and len(first.create) == 2 and first.stop == []
    other = registry.acquire("run-b", "cpu1", "code1", "transcripts:1", 1)
    assert other.reuse == [] and len(other.create) == 1  # run-a holds both: a third starts
    assert not set(other.create) & set(first.create)
    registry.release("run-a")
    registry.release("run-b")
    speakers = registry.acquire("run-c", "cpu1", "code1", "speakers:1", 1)
    registry.release("run-c")
    # the worker that set up `speakers` is the one a later speakers stream gets first
    again = registry.acquire("run-d", "cpu1", "code1", "speakers:1", 1)
    assert again.reuse == (speakers.reuse or speakers.create) and again.create == []
    assert [w["leased"] for w in registry.describe()].count(True) == 1


def test_no_more_workers_start_than_the_cluster_holds_and_a_run_waits_for_a_released_one():
    registry = WorkerRegistry()
    first = registry.acquire("run-a", "cpu1", "code1", "k", 2, capacity=2)
    assert len(first.create) == 2
    # a second run at once: a third worker would wait for CPUs that run-a's workers hold (and
    # keep holding once idle), so none is started and the run asks again
    assert registry.acquire("run-b", "cpu1", "code1", "k", 1, capacity=2).create == []
    assert registry.acquire("run-b", "cpu1", "code1", "k", 1, capacity=2).reuse == []
    registry.release("run-a")
    assert len(registry.acquire("run-b", "cpu1", "code1", "k", 1, capacity=2).reuse) == 1
    assert len(registry.acquire("run-c", "cpu1", "code1", "k", 2, capacity=2).reuse) == 1


def test_a_lease_that_is_not_renewed_lapses():
    clock = _Clock()
    registry = WorkerRegistry(lease_s=60, clock=clock)
    held = registry.acquire("killed-run", "cpu1", "code1", "k", 1).create
    clock.now += 30
    assert registry.renew("killed-run") == 1
    clock.now += 59
    assert registry.acquire("run-b", "cpu1", "code1", "k", 1).create != []  # still held
    clock.now += 61  # the killed run renewed nothing for 61 s: its worker is free
    assert registry.acquire("run-c", "cpu1", "code1", "k", 1).reuse == held


def test_workers_of_older_code_are_stopped_and_other_shapes_only_when_room_is_needed():
    registry = WorkerRegistry()
    old = registry.acquire("a", "cpu1", "old", "k", 1).create
    gpu = registry.acquire("b", "gpu1", "new", "k", 1).create
    registry.release("a")
    registry.release("b")
    grant = registry.acquire("c", "cpu1", "new", "k", 1)
    assert set(grant.stop) == {*old, *gpu} and len(grant.create) == 1
    registry.release("c")
    keep = registry.acquire("d", "gpu1", "new", "k", 0)  # nothing missing: nothing stopped
    assert keep.stop == []
    registry.forget(grant.create[0])
    assert registry.names() == []


def test_the_service_file_is_private_and_a_dead_service_is_ignored(tmp_path):
    path = workers.service_file(tmp_path)
    assert read_service(path) is None  # none written
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        info = ServiceInfo(address, "secret", os.getpid(), "now", 2.0)
        info.write(path)
        assert path.stat().st_mode & 0o777 == 0o600  # it holds the cluster's token
        assert read_service(path) == info
        ServiceInfo(address, "secret", 2**22 + 12345, "now").write(path)  # no such process
        assert read_service(path) is None
    info.write(path)
    assert read_service(path) is None  # its process runs, but nothing listens any more


class SetupCounter:
    """Test stage: where it ran and how often its worker set it up (a model load)."""

    code_version = "test"
    resources = StageResources(num_cpus=1, max_actors=1)

    def __init__(self, name: str = "counter", sleep_s: float = 0.0) -> None:
        self.name = name
        self.sleep_s = sleep_s
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1

    def process(self, item):
        time.sleep(self.sleep_s)
        return [os.getpid(), self.setups]


RUN = """
import json, sys
from pathlib import Path
from archive_pipeline.core import ray_runtime
from archive_pipeline_tests.core.test_workers import SetupCounter
runtime = ray_runtime.RayRuntime("local", service_file=Path(sys.argv[1]), temp_dir=sys.argv[2])
outcome = runtime.map(SetupCounter(sleep_s=float(sys.argv[3])), [0])[0]
assert outcome.ok, outcome
print(json.dumps({"value": outcome.value, "joined": runtime.service is not None}))
runtime.shutdown()
"""


def _run(home: Path, sleep_s: float = 0.0) -> subprocess.Popen:
    """A run in its own process (what a Dagster run worker or `archive-pipeline run` is)."""
    env = {**os.environ, "ARCHIVE_HOME": str(home), "PYTHONPATH": str(REPO)}
    args = [str(workers.service_file(home)), str(home / "ray"), str(sleep_s)]
    return subprocess.Popen(
        [sys.executable, "-c", RUN, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(run: subprocess.Popen) -> dict:
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_runs_in_other_processes_share_the_warm_workers_and_stopping_leaves_nothing(tmp_path):
    import psutil

    from archive_pipeline.ops.ui import WorkerService, _group_alive

    env = {**os.environ, "ARCHIVE_HOME": str(tmp_path), "ARCHIVE_RAY_NUM_CPUS": "2"}
    service = WorkerService(env=env, log_path=tmp_path / "workers.log")
    service.start()
    try:
        deadline = time.monotonic() + 120
        while read_service(workers.service_file(tmp_path)) is None:
            assert time.monotonic() < deadline, (tmp_path / "workers.log").read_text()
            assert service.process.poll() is None, (tmp_path / "workers.log").read_text()
            time.sleep(0.5)
        first = _result(_run(tmp_path))
        second = _result(_run(tmp_path))
        assert first["joined"] and second["joined"]
        # the second run got the same worker process, its stage still set up: no model load
        assert second["value"] == first["value"] == [first["value"][0], 1]
        # three runs at once on 2 CPUs: two lease the two workers (never one for both), the
        # third waits for one of them to be released (a third worker could not start: the
        # others hold the CPUs), then runs
        slow = [_run(tmp_path, sleep_s=3.0) for _ in range(3)]
        pids = {_result(run)["value"][0] for run in slow}
        assert len(pids) == 2 and first["value"][0] in pids
        workers_pids = {pid for pid in pids if psutil.pid_exists(pid)}
        assert workers_pids == pids  # they stay up between runs
        # `archive-pipeline run` over this ARCHIVE_HOME joins them too (and leaves them up)
        from PIL import Image

        (tmp_path / "inbox/1970s").mkdir(parents=True)
        Image.new("RGB", (64, 48), "teal").save(tmp_path / "inbox/1970s/still.png")
        cli = subprocess.run(
            [str(Path(sys.executable).parent / "archive-pipeline"), "run"],
            cwd=REPO,
            env={k: v for k, v in env.items() if not k.startswith("DAGSTER_")},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
        assert "Ray: the warm model workers served 1 decade run(s)" in cli.stdout, cli.stdout
        assert read_service(workers.service_file(tmp_path)) is not None
    finally:
        group = service.process.pid
        stopping = time.monotonic()
        service.stop()
    assert time.monotonic() - stopping < 25
    assert not _group_alive(group)
    assert not workers.service_file(tmp_path).exists()
    deadline = time.monotonic() + 30  # the workers exit once their raylet is gone
    while [pid for pid in pids if psutil.pid_exists(pid)] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
