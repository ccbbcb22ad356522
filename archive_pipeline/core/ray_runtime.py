"""Run Dagster-free stages over items on Ray (DESIGN §6): `RayRuntime` starts or joins Ray once,
checks that some node can host a stage's worker, leases warm workers (`core.actor_pool`),
streams items through them with a time and memory bound per item, and yields one
`ItemOutcome` per item: the value, or the error as data. Lost workers are retried."""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from archive_pipeline import settings
from archive_pipeline.core import actor_pool, ray_cluster
from archive_pipeline.core import workers as warm
from archive_pipeline.core.compute import (
    ItemOutcome,
    OnOutcome,
    Stage,
    StageResources,
    StageSetupError,
    stage_key,
)
from archive_pipeline.core.forks import exec_children
from archive_pipeline.core.ray_cluster import RayConnectError, RayStartError

log = logging.getLogger(__name__)


class InfeasibleResourcesError(RuntimeError):
    """No node of the Ray cluster offers what a stage asks for."""


class ItemTimeoutError(RuntimeError):
    """An item ran past its time bound (its worker is stopped and replaced)."""


def _stop_item(stopped, pending, now, ref, error: type[Exception], message: str) -> None:
    """Record that the item of `ref` is to be stopped (first reason wins)."""
    _, index, _, started = pending[ref]
    stopped.setdefault(ref, ItemOutcome(index, None, error.__name__, message, now - started))


class ItemMemoryError(RuntimeError):
    """An item's worker grew past the memory bound (the worker is stopped and replaced)."""


def _fits(node: Mapping[str, float], request: Mapping[str, float]) -> int:
    """How many actors with `request` fit on a node with these total resources."""
    counts = [int(node.get(name, 0.0) // amount) for name, amount in request.items() if amount > 0]
    return min(counts) if counts else 1


ITEM_TIMEOUT_REALTIME = 10.0  # an item's time bound grows this many seconds per media second


class RayRuntime:
    """Starts or joins Ray once, checks stage resources, and maps stages over items."""

    def __init__(
        self,
        address: str = settings.RAY_ADDRESS.default,
        *,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        connect_timeout_s: float = ray_cluster.CONNECT_TIMEOUT_S,
        resource_wait_s: float = settings.RAY_RESOURCE_WAIT_S.default,
        include_dashboard: bool = settings.RAY_DASHBOARD.default,
        object_store_memory_mb: int | None = None,
        max_item_retries: int = 2,
        item_timeout_s: float = settings.ITEM_TIMEOUT_S.default,
        item_timeout_realtime: float = ITEM_TIMEOUT_REALTIME,
        worker_memory_mb: int = settings.WORKER_MEMORY_MB.default,
        memory_check_s: float = 1.0,
        temp_dir: str | None = None,
        start_attempts: int = 3,
        service_file: Path | None = None,
    ) -> None:
        self.address = address
        # With address `local`, the warm model service written there (if it runs) is joined
        # instead of starting a Ray for this run (core.workers).
        self.service_file = service_file
        self.service: warm.ServiceInfo | None = None
        # A local Ray keeps its session (sockets, logs, spilled objects) under temp_dir (else
        # Ray's /tmp/ray); it is removed when this runtime stops Ray, or by the reaper.
        self.temp_dir = temp_dir
        self.start_attempts = start_attempts
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.connect_timeout_s = connect_timeout_s
        self.resource_wait_s = resource_wait_s
        self.include_dashboard = include_dashboard
        self.object_store_memory_mb = object_store_memory_mb
        self.max_item_retries = max_item_retries
        self.item_timeout_s = item_timeout_s
        self.item_timeout_realtime = item_timeout_realtime
        self.worker_memory_mb = worker_memory_mb
        self.memory_check_s = memory_check_s
        self.started_here = False
        self._lock = threading.Lock()

    def ensure_started(self, *, join_service: bool = True) -> None:
        """Join the warm model service if it runs, else start local Ray on 127.0.0.1, or
        connect to the configured cluster (bounded wait)."""
        with self._lock:
            settings.set_library_default("RAY_USAGE_STATS_ENABLED")
            local = self.address in ("", "local")
            if local:
                ray_cluster.bind_loopback_only()
                ray_cluster.quiet_token_auth_notice()
                if join_service and self._join_service():
                    self.started_here = True
                    return
            import ray

            if ray.is_initialized():
                return
            if local:
                # A new local cluster uses token authentication; Ray would write its token to
                # ~/.ray/auth_token. Given in the environment (inherited by Ray's daemons and
                # workers, one per process, an operator's own wins), nothing is written.
                settings.set_library_default("RAY_AUTH_TOKEN", ray_cluster.LOCAL_AUTH_TOKEN)
                session = ray_cluster.ray_session_root(self.temp_dir) if self.temp_dir else None
                with exec_children():  # Ray's daemons are started by fork + exec
                    self._start_local(ray, session)
                    ray_cluster.LOCAL_SESSION[:] = [session] if session else []
                    from archive_pipeline.core.reaper import watch

                    watch(remove=session)  # a driver killed with -9 leaves no Ray behind
            else:
                if self.address != "auto":
                    ray_cluster.tcp_reachable(self.address, self.connect_timeout_s)
                try:
                    ray.init(
                        address=self.address,
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                        configure_logging=False,
                    )
                except ConnectionError as exc:
                    raise RayConnectError(f"cannot join Ray at {self.address}: {exc}") from exc
                actor_pool.use_cluster_registry()
            self.started_here = True

    def _join_service(self) -> bool:
        """Join the model service's Ray and lease its warm workers; False (this run starts
        its own Ray) when none runs or it cannot be joined, saying why."""
        import sys

        service = warm.read_service(self.service_file)
        if service is None:
            return False
        if "ray" in sys.modules:
            import ray

            if ray.is_initialized():
                return False
            if settings.library_value("RAY_AUTH_TOKEN") != service.token:
                log.warning(
                    "the warm model workers at %s are not used: Ray was imported in this "
                    "process before their token was known; this run starts its own Ray",
                    service.address,
                )
                return False
        # Ray reads its auth mode and token when it is imported (FIELD-NOTES).
        settings.set_for_children("RAY_AUTH_MODE", "token")
        settings.set_for_children("RAY_AUTH_TOKEN", service.token)
        import ray

        try:
            ray.init(
                address=service.address,
                _node_ip_address=ray_cluster.LOOPBACK,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
            registry = ray.get_actor(warm.REGISTRY, namespace=warm.NAMESPACE)
        except Exception as exc:  # a service stopping meanwhile: this run goes on alone
            log.warning("the warm model workers at %s cannot be joined: %s", service.address, exc)
            with contextlib.suppress(Exception):
                ray.shutdown()
            return False
        actor_pool.share(registry)
        self.service = service
        log.info("joined the warm model workers at %s (pid %d)", service.address, service.pid)
        return True

    def _start_local(self, ray, session: Path | None) -> None:
        """ray.init on 127.0.0.1, tried `start_attempts` times: on a loaded machine a raylet
        can miss Ray's 30 s start-up window ("node timed out during startup")."""
        for attempt in range(1, self.start_attempts + 1):
            try:
                ray.init(
                    num_cpus=self.num_cpus,
                    num_gpus=self.num_gpus,
                    include_dashboard=self.include_dashboard,
                    dashboard_host=ray_cluster.LOOPBACK,
                    object_store_memory=(self.object_store_memory_mb or 0) * 1024**2 or None,
                    _node_ip_address=ray_cluster.LOOPBACK,
                    _temp_dir=str(session) if session else None,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                )
                return
            except Exception as exc:  # Ray raises a bare Exception for this one
                if attempt == self.start_attempts or not ray_cluster.transient_start_error(exc):
                    raise RayStartError(
                        f"local Ray did not start ({attempt} attempt(s)): {exc}"
                    ) from exc
                log.warning("local Ray start failed (%s); retrying (%d)", exc, attempt)
                with contextlib.suppress(Exception):
                    ray.shutdown()
                time.sleep(2.0 * attempt)

    def shutdown(self) -> None:
        """Stop Ray if this runtime started or joined it (and remove its session folder)."""
        if self.started_here:
            ray_cluster.stop_ray()
            self.started_here = False

    def nodes(self) -> list[dict[str, float]]:
        """Total resources of each alive node."""
        import ray

        return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]

    def time_limit(self, duration_s: float | None) -> float:
        """An item's time bound: the floor plus a multiple of its media duration."""
        return self.item_timeout_s + self.item_timeout_realtime * (duration_s or 0.0)

    def check_feasible(self, stage_name: str, resources: StageResources) -> int:
        """Return how many actors fit in the cluster; raise if no node can host even one."""
        self.ensure_started()
        request = resources.request()
        deadline = time.monotonic() + self.resource_wait_s
        while True:
            capacity = sum(_fits(node, request) for node in self.nodes())
            if capacity > 0:
                return capacity
            if time.monotonic() >= deadline:
                break
            time.sleep(2.0)
        offered = [
            {k: v for k, v in node.items() if not k.startswith("node:") and "memory" not in k}
            for node in self.nodes()
        ]
        raise InfeasibleResourcesError(
            f"stage {stage_name!r} asks for {request} per worker, which no node of the Ray "
            f"cluster offers (nodes offer {offered}). Lower it with ARCHIVE_STAGE_RESOURCES, e.g. "
            f'\'{{"{stage_name}": {{"num_gpus": 0}}}}\', or add nodes that have it.'
        )

    def map(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        on_outcome: OnOutcome | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> list[ItemOutcome]:
        """`stream`, gathered in item order (small inputs and tests)."""
        outcomes = {}
        for outcome in self.stream(stage, items, durations=durations):
            outcomes[outcome.index] = outcome
            if on_outcome is not None:
                on_outcome(outcome)
        return [outcomes[i] for i in range(len(items))]

    def stream(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        durations: Sequence[float | None] | None = None,
    ) -> Iterator[ItemOutcome]:
        """Process every item on a pool of warm stage workers and yield each outcome as it
        finishes (nothing is gathered here: the caller commits as it goes).

        An item that runs past `time_limit(duration)` (`durations`: its media seconds, when
        known) becomes an `ItemTimeoutError` outcome, one whose worker grows past the memory
        bound an `ItemMemoryError`; either worker is stopped and a replacement started while
        the others go on. A worker lost mid-item (crash, node loss) is replaced and the item
        retried `max_item_retries` times."""
        if not items:
            return
        capacity = self.check_feasible(stage.name, stage.resources)  # Ray is started first
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        n_workers = max(1, min(len(items), capacity, stage.resources.max_actors or capacity))
        key = stage_key(stage)
        stage_ref = ray.put(stage)
        lease = actor_pool.current().lease(stage.resources, key)
        loading = {w.load.remote(key, stage_ref): w for w in lease.get(n_workers, capacity)}

        def replace_worker(lost: Any) -> None:
            fresh = lease.replace(lost)
            loading[fresh.load.remote(key, stage_ref)] = fresh

        queue = collections.deque(enumerate(items))
        tries: collections.Counter[int] = collections.Counter()
        idle: list[Any] = []
        pending: dict[Any, tuple[Any, int, Any, float]] = {}  # ref -> (worker, index, item, t0)
        limits = [self.time_limit(d) for d in (durations or [None] * len(items))]
        memory_mb = stage.resources.memory_mb or self.worker_memory_mb
        next_memory_check = time.monotonic() + self.memory_check_s
        finished = lost_at_start = 0

        def deadline(ref: Any) -> float:
            _, index, _, started = pending[ref]
            return started + limits[index]

        try:
            while finished < len(items):
                lease.renew()
                while queue and idle:
                    worker = idle.pop()
                    index, item = queue.popleft()
                    ref = worker.run.remote(key, index, item)
                    pending[ref] = (worker, index, item, time.monotonic())
                wait_s = min([*map(deadline, pending), next_memory_check]) - time.monotonic()
                done, _ = ray.wait([*pending, *loading], num_returns=1, timeout=max(0.05, wait_s))
                for ref in [r for r in done if r in loading]:
                    actor = loading.pop(ref)
                    try:
                        error = ray.get(ref)
                    except (RayActorError, WorkerCrashedError) as exc:
                        lost_at_start += 1  # e.g. a warm worker that died between stages
                        if lost_at_start <= n_workers + self.max_item_retries:
                            replace_worker(actor)
                            continue
                        error = f"workers keep dying while starting: {exc}"
                    if error:
                        raise StageSetupError(f"stage {stage.name!r} could not start: {error}")
                    idle.append(actor)
                stopped: dict[Any, ItemOutcome] = {}  # ref -> outcome: items to stop now
                now = time.monotonic()
                stop = functools.partial(_stop_item, stopped, pending, now)
                for ref in [r for r in pending if r not in done and now >= deadline(r)]:
                    limit = limits[pending[ref][1]]
                    stop(
                        ref,
                        ItemTimeoutError,
                        f"no result within {limit:.0f} s (the time bound: "
                        f"{self.item_timeout_s:.0f} s + {self.item_timeout_realtime:g} x the "
                        "media's duration); its worker was stopped",
                    )
                if memory_mb and now >= next_memory_check:
                    next_memory_check = now + self.memory_check_s
                    for ref, rss in self._worker_memory(pending, done).items():
                        if rss > memory_mb:
                            stop(
                                ref,
                                ItemMemoryError,
                                f"its worker used {rss:.0f} MB, over the bound of {memory_mb} MB "
                                "(ARCHIVE_WORKER_MEMORY_MB or the stage's memory_mb); the worker "
                                "was stopped",
                            )
                for ref, outcome in stopped.items():
                    actor, index, _, _ = pending.pop(ref)
                    log.warning("item %s of %s: %s", index, stage.name, outcome.message)
                    replace_worker(actor)  # a hung decode or runaway model call: a fresh one
                    finished += 1
                    yield outcome
                for ref in [r for r in done if r in pending]:
                    actor, index, item, _ = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                        idle.append(actor)
                    except (RayActorError, WorkerCrashedError) as exc:
                        tries[index] += 1
                        log.warning("worker of %s lost on item %s: %s", stage.name, index, exc)
                        replace_worker(actor)
                        if tries[index] <= self.max_item_retries:
                            queue.appendleft((index, item))
                            continue
                        outcome = ItemOutcome(index, None, "WorkerLostError", str(exc))
                    finished += 1
                    yield outcome
        finally:
            # Workers still running an item (the caller stopped early, or an error) are
            # stopped: their results would arrive for nobody. Idle ones stay warm.
            for actor, *_ in list(pending.values()):
                lease.drop(actor)
            for actor in list(loading.values()):
                lease.drop(actor)
            lease.release()

    def _worker_memory(self, pending: Mapping[Any, tuple], done: Sequence[Any]) -> dict:
        """Resident MB of each busy worker (those that answer within a second)."""
        import ray

        asks = {
            ref: p[0].rss_mb.options(**actor_pool.PROBE).remote()
            for ref, p in pending.items()
            if ref not in done
        }
        if not asks:
            return {}
        ready, _ = ray.wait(list(asks.values()), num_returns=len(asks), timeout=1.0)
        answered = set(ready)
        out = {}
        for ref, ask in asks.items():
            if ask in answered:
                try:
                    out[ref] = ray.get(ask)
                except Exception:  # the worker died meanwhile: its item's ref says how
                    continue
        return out
