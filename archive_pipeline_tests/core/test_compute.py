"""Ray execution: placement by declared resources, fail-fast, errors as data, bounded connect."""

import multiprocessing
import shutil
import tempfile
import time

import pytest

from archive_pipeline.core import devices
from archive_pipeline.core.compute import StageResources, StageSetupError, run_inline
from archive_pipeline.core.ray_cluster import RayConnectError
from archive_pipeline.core.ray_runtime import InfeasibleResourcesError, RayRuntime
from archive_pipeline.stages.base import BaseStage
from archive_pipeline_tests.helpers import free_port


def _make_stage(name, resources, fail_on=(), setup_error=None, meet=None, nodes=2):
    """`meet`: a folder where each worker's setup() leaves its node id; items then wait (up to
    60 s) until workers have been set up on `nodes` nodes, so that where items run shows where
    the pool placed workers, not which worker started first on a loaded machine."""

    class ProbeStage:
        """Test stage: reports where it ran; fails on chosen items."""

        code_version = "test"

        def __init__(self):
            self.name = name
            self.resources = resources
            self.calls = 0

        def setup(self):
            if setup_error:
                raise RuntimeError(setup_error)
            self.setups = 1
            if meet:
                import pathlib

                import ray

                (pathlib.Path(meet) / ray.get_runtime_context().get_node_id()).touch()

        def process(self, item):
            import ray

            if meet:
                import os

                deadline = time.monotonic() + 60
                while len(os.listdir(meet)) < nodes and time.monotonic() < deadline:
                    time.sleep(0.1)
            if item in fail_on:
                raise ValueError(f"bad item {item}")
            time.sleep(0.3)  # long enough for every worker to start and take items
            self.calls += 1
            return {
                "item": item,
                "node": ray.get_runtime_context().get_node_id(),
                "gpus": ray.get_gpu_ids(),
                "device": devices.resolve("auto"),
                "ray_gpus": devices.ray_gpus(),
                "calls": self.calls,
            }

    return ProbeStage()


def _cluster_scenario() -> dict:
    """Head + two workers on 127.0.0.1, one advertising a GPU; runs in a fresh process."""
    import os

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    from archive_pipeline_tests.helpers import listeners_of

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    runtime = RayRuntime(cluster.address, connect_timeout_s=20)
    out = {}
    meet = tempfile.mkdtemp(prefix="cpu_stage_nodes_")  # where the CPU stage's workers meet
    try:
        runtime.ensure_started()
        gpu_stage = _make_stage("gpu_stage", StageResources(num_cpus=1, num_gpus=1))
        results = runtime.map(gpu_stage, list(range(6)))
        out["gpu_nodes"] = {r.value["node"] for r in results}
        out["gpu_ids"] = [r.value["gpus"] for r in results]
        out["gpu_node_id"] = gpu_node.node_id
        out["gpu_stage_devices"] = {
            (tuple(r.value["ray_gpus"]), r.value["device"]) for r in results
        }
        cpu_stage = _make_stage("cpu_stage", StageResources(num_cpus=1), meet=meet)
        cpu_results = runtime.map(cpu_stage, list(range(12)))
        out["cpu_nodes"] = {r.value["node"] for r in cpu_results}
        out["cpu_stage_devices"] = {
            (tuple(r.value["ray_gpus"]), r.value["device"]) for r in cpu_results
        }
        try:
            runtime.map(_make_stage("tpu_stage", StageResources(custom={"TPU": 1})), [1])
        except InfeasibleResourcesError as exc:
            out["infeasible"] = str(exc)
        import psutil

        pids = {p.pid for p in psutil.Process().children(recursive=True)}
        out["listeners"] = listeners_of(pids)
    finally:
        runtime.shutdown()
        cluster.shutdown()
        shutil.rmtree(meet, ignore_errors=True)
    return out


@pytest.mark.ray
@pytest.mark.slow
def test_placement_on_simulated_multi_node_cluster():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        out = pool.apply(_cluster_scenario)
    assert out["gpu_nodes"] == {out["gpu_node_id"]}, "GPU work left the GPU node"
    assert all(ids == [0] for ids in out["gpu_ids"])
    # devices follow what Ray assigned: the GPU stage's worker holds the node's GPU (a node
    # without CUDA, as here, still loads on the CPU); a CPU stage's worker holds none, so its
    # `auto` device is the CPU even on a GPU node
    assert out["gpu_stage_devices"] == {((0,), "cpu")}
    assert out["cpu_stage_devices"] == {((), "cpu")}
    assert len(out["cpu_nodes"]) >= 2, "CPU work did not spread over the nodes"
    assert "no node of the Ray cluster offers" in out["infeasible"]
    assert "ARCHIVE_STAGE_RESOURCES" in out["infeasible"]
    assert out["listeners"], "found no Ray listeners to check"
    from archive_pipeline_tests.helpers import _is_loopback

    assert all(_is_loopback(ip) for ip, _ in out["listeners"]), out["listeners"]


@pytest.mark.ray
def test_errors_are_data_and_models_load_once_per_worker(ray_local):
    stage = _make_stage("s", StageResources(num_cpus=1, max_actors=1), fail_on=(2,))
    results = ray_local.map(stage, [0, 1, 2, 3])
    assert [r.ok for r in results] == [True, True, False, True]
    assert results[2].error_class == "ValueError" and "bad item 2" in results[2].message
    # one actor: its stage instance served every good item (setup ran once)
    assert [r.value["calls"] for r in results if r.ok] == [1, 2, 3]


@pytest.mark.ray
def test_setup_failure_fails_the_stage_with_its_message(ray_local):
    stage = _make_stage("s", StageResources(), setup_error="model weights not found: set X")
    with pytest.raises(StageSetupError, match="model weights not found: set X"):
        ray_local.map(stage, [1, 2])


@pytest.mark.ray
@pytest.mark.timeout(120)  # a guard against hanging (waiting for a GPU), not a time measurement
def test_infeasible_gpu_request_fails_at_once_locally(ray_local):
    """Without resource_wait_s the request is refused before anything is scheduled."""
    stage = _make_stage("transcripts", StageResources(num_gpus=1))
    with pytest.raises(InfeasibleResourcesError, match=r'"transcripts": \{"num_gpus": 0\}'):
        ray_local.map(stage, [1])


def _connect_dead(port: int) -> str:
    try:
        RayRuntime(f"127.0.0.1:{port}", connect_timeout_s=2).ensure_started()
    except RayConnectError as exc:
        return str(exc)
    return "connected?"


@pytest.mark.slow
@pytest.mark.timeout(120)  # a guard against hanging, not a time measurement
def test_connect_to_dead_cluster_is_bounded():
    """A fresh process (no Ray yet) gives up on a dead address after the configured bound."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        message = pool.apply(_connect_dead, (free_port(),))
    assert "cannot reach the Ray cluster" in message and "ARCHIVE_RAY_ADDRESS" in message
    assert "within 2 s" in message  # the configured connect_timeout_s was the bound


def test_inline_runner_has_the_same_semantics():
    class Double:
        name, code_version, resources = "double", "1", StageResources()

        def setup(self):
            pass

        def process(self, item):
            return 2 // item

    results = run_inline(Double(), [1, 0])
    assert results[0].value == 2 and results[1].error_class == "ZeroDivisionError"


def test_stage_resource_overrides():
    base = StageResources(num_cpus=1)
    assert base.with_overrides({"num_gpus": 0.5}).request() == {"CPU": 1.0, "GPU": 0.5}
    with pytest.raises(ValueError, match="unknown"):
        base.with_overrides({"gpus": 1})


class _Hangs(BaseStage):
    """Test stage: item 'hang.wav' never returns (like a decode blocked on a FIFO)."""

    name = "transcripts"
    tables = ("transcripts",)
    code_version = "test"
    model_id = "test"
    params: dict = {}
    resources = StageResources(num_cpus=1, max_actors=1)  # the replacement must do the rest

    def setup(self):
        pass

    def process(self, item):
        if item.store_key == "hang.wav":
            time.sleep(3600)
        return {}

    def content_id(self, item):
        return item.sha256

    def rows(self, item, value, *, decade):
        return {"transcripts": []}


@pytest.mark.ray
@pytest.mark.slow
def test_a_hung_item_times_out_as_a_failure_and_the_rest_is_committed(ray_local, tmp_path):
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.partition import process_partition

    runtime = RayRuntime("local", item_timeout_s=3.0, item_timeout_realtime=0.5)  # joins Ray
    keys = ["hang.wav", "a.wav", "b.wav", "c.wav"]
    items = [CatalogItem(f"file:///in/{k}", k, f"m{i}", f"s{i}", 2.0) for i, k in enumerate(keys)]
    warehouse = Warehouse(str(tmp_path))
    report = process_partition(
        stage=_Hangs(), decade="1980s", items=items, warehouse=warehouse, compute=runtime
    )
    assert report.n_failed == 1
    (failure,) = warehouse.read("failures").to_pylist()
    assert failure["store_key"] == "hang.wav" and failure["error_class"] == "ItemTimeoutError"
    assert "no result within 4 s" in failure["message"]  # 3 s + 0.5 x 2 s of media
    ledger = {
        r["uri"].rsplit("/", 1)[-1]: r["status"] for r in warehouse.read("stage_items").to_pylist()
    }
    assert ledger == {"hang.wav": "failed", "a.wav": "ok", "b.wav": "ok", "c.wav": "ok"}


class _DiesOnce:
    """Test stage: the first time it meets item 2 its worker process dies (SIGKILL) mid-item."""

    name = "dies_once"
    code_version = "test"
    resources = StageResources(num_cpus=1, max_actors=1)

    def __init__(self, marker: str):
        self.marker = marker

    def setup(self):
        pass

    def process(self, item):
        import os
        import signal

        if item == 2 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return {"item": item, "pid": os.getpid()}


@pytest.mark.ray
@pytest.mark.slow
def test_a_worker_killed_mid_item_is_replaced_and_the_item_retried(ray_local, tmp_path):
    outcomes = list(ray_local.stream(_DiesOnce(str(tmp_path / "died")), [0, 1, 2, 3]))
    assert sorted(o.index for o in outcomes) == [0, 1, 2, 3]  # each exactly once
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]
    pids = {o.index: o.value["pid"] for o in outcomes}
    assert pids[0] == pids[1] != pids[2] == pids[3]  # the retry ran on a fresh worker


class _Grows:
    """Test stage: item 'big' holds ~700 MB for a while; the others are small."""

    name = "grows"
    code_version = "test"
    resources = StageResources(num_cpus=1, max_actors=1)

    def setup(self):
        pass

    def process(self, item):
        if item == "big":
            block = bytearray(700 * 1024**2)
            for i in range(0, len(block), 4096):
                block[i] = 1  # touch every page: resident, not just reserved
            time.sleep(30)
        return item


@pytest.mark.ray
@pytest.mark.slow
def test_a_worker_past_its_memory_bound_fails_the_item_and_is_replaced(ray_local):
    runtime = RayRuntime("local", worker_memory_mb=500, memory_check_s=0.5)  # joins Ray
    outcomes = runtime.map(_Grows(), ["a", "big", "b", "c"])
    # an item left to finish would be ok: its failure means the worker was stopped mid-item
    assert [o.ok for o in outcomes] == [True, False, True, True]
    assert outcomes[1].error_class == "ItemMemoryError"
    assert "over the bound of 500 MB" in outcomes[1].message


class _Pid:
    code_version = "test"
    resources = StageResources(num_cpus=1, max_actors=1)

    def __init__(self, name):
        self.name = name
        self.setups = 0

    def setup(self):
        self.setups += 1

    def process(self, item):
        import os

        return (os.getpid(), self.setups)


@pytest.mark.ray
def test_stages_of_a_run_share_warm_workers_and_keep_their_models(ray_local):
    first = ray_local.map(_Pid("one"), [1])[0].value
    second = ray_local.map(_Pid("two"), [1])[0].value
    again = ray_local.map(_Pid("one"), [1, 2])
    assert first[0] == second[0]  # one worker process (its imports) served both stages
    assert [o.value for o in again] == [first, first]  # stage "one" was not set up again


def test_a_local_ray_start_is_a_new_cluster_retried_when_it_times_out(monkeypatch):
    from archive_pipeline.core import ray_runtime

    class FlakyRay:
        def __init__(self, failures: int, message: str):
            self.failures, self.message, self.inits = failures, message, 0

        def init(self, **kw):
            # a new cluster, never one found through /tmp/ray/ray_current_cluster or RAY_ADDRESS
            assert kw["address"] == "local"
            self.inits += 1
            if self.inits <= self.failures:
                raise Exception(self.message)  # what Ray raises for this one

        def shutdown(self):
            pass

    monkeypatch.setattr(ray_runtime.time, "sleep", lambda s: None)
    timed_out = "The current node timed out during startup."
    flaky = FlakyRay(2, timed_out)
    ray_runtime.RayRuntime("local", start_attempts=3)._start_local(flaky, None)
    assert flaky.inits == 3
    with pytest.raises(ray_runtime.RayStartError, match="3 attempt"):
        ray_runtime.RayRuntime("local", start_attempts=3)._start_local(FlakyRay(5, timed_out), None)
    other = FlakyRay(5, "invalid resources")  # not transient: reported at once
    with pytest.raises(ray_runtime.RayStartError, match="1 attempt"):
        ray_runtime.RayRuntime("local", start_attempts=3)._start_local(other, None)
    assert other.inits == 1
