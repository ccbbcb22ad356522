"""Run Dagster-free stages over items on Ray (DESIGN §6): `RayRuntime` starts or joins Ray once,
checks that some node can host a stage's worker, leases warm workers (`core.actor_pool`),
streams items through them with a time and memory bound per item, and yields one
`ItemOutcome` per item: the value, or the error as data. Lost workers are retried."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from archive_pipeline.config import settings
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
                    # "local": a new cluster even where another one's address file is found
                    # (/tmp/ray/ray_current_cluster from `ray start`, another test lane's Ray)
                    address="local",
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
        run = _Dispatch(self, stage, items, durations, capacity)
        finished = 0
        try:
            while finished < len(items):
                done = run.wait()
                run.started(done)
                for outcome in [*run.stopped(done), *run.results(done)]:
                    finished += 1
                    yield outcome
        finally:
            run.close()


def _worker_memory(pending: Mapping[Any, tuple], done: Sequence[Any]) -> dict:
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


class _Dispatch:
    """One `stream`'s state: its lease of warm workers (loading, idle, busy), the items queued
    and running, their time bounds and tries."""

    def __init__(
        self,
        runtime: RayRuntime,
        stage: Stage,
        items: Sequence[Any],
        durations: Sequence[float | None] | None,
        capacity: int,
    ) -> None:
        import ray

        self.runtime, self.stage = runtime, stage
        self.n_workers = max(1, min(len(items), capacity, stage.resources.max_actors or capacity))
        self.key = stage_key(stage)
        self.stage_ref = ray.put(stage)
        self.lease = actor_pool.current().lease(stage.resources, self.key)
        self.loading: dict[Any, Any] = {}  # load ref -> worker
        for worker in self.lease.get(self.n_workers, capacity):
            self._load(worker)
        self.queue = collections.deque(enumerate(items))
        self.tries: collections.Counter[int] = collections.Counter()
        self.idle: list[Any] = []
        self.pending: dict[
            Any, tuple[Any, int, Any, float]
        ] = {}  # ref -> (worker, index, item, t0)
        self.limits = [runtime.time_limit(d) for d in (durations or [None] * len(items))]
        self.memory_mb = stage.resources.memory_mb or runtime.worker_memory_mb
        self.next_memory_check = time.monotonic() + runtime.memory_check_s
        self.lost_at_start = 0

    def _load(self, worker: Any) -> None:
        self.loading[worker.load.remote(self.key, self.stage_ref)] = worker

    def _replace(self, lost: Any) -> None:
        self._load(self.lease.replace(lost))

    def _deadline(self, ref: Any) -> float:
        _, index, _, started = self.pending[ref]
        return started + self.limits[index]

    def wait(self) -> list[Any]:
        """Give queued items to idle workers, then wait for the next result, loaded worker,
        deadline or memory check."""
        import ray

        self.lease.renew()
        while self.queue and self.idle:
            worker = self.idle.pop()
            index, item = self.queue.popleft()
            ref = worker.run.remote(self.key, index, item)
            self.pending[ref] = (worker, index, item, time.monotonic())
        wake = min([*map(self._deadline, self.pending), self.next_memory_check])
        done, _ = ray.wait(
            [*self.pending, *self.loading],
            num_returns=1,
            timeout=max(0.05, wake - time.monotonic()),
        )
        return done

    def started(self, done: Sequence[Any]) -> None:
        """Workers that finished loading become idle; one that died loading is replaced (a
        bounded number of times); a stage whose setup failed stops the stream."""
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        for ref in [r for r in done if r in self.loading]:
            actor = self.loading.pop(ref)
            try:
                error = ray.get(ref)
            except (RayActorError, WorkerCrashedError) as exc:
                self.lost_at_start += 1  # e.g. a warm worker that died between stages
                if self.lost_at_start <= self.n_workers + self.runtime.max_item_retries:
                    self._replace(actor)
                    continue
                error = f"workers keep dying while starting: {exc}"
            if error:
                raise StageSetupError(f"stage {self.stage.name!r} could not start: {error}")
            self.idle.append(actor)

    def stopped(self, done: Sequence[Any]) -> list[ItemOutcome]:
        """Items past their time bound or whose worker grew past the memory bound: their
        workers are stopped and replaced; one outcome each (the first reason wins)."""
        now = time.monotonic()
        reasons: dict[Any, tuple[type[Exception], str]] = {}
        for ref in [r for r in self.pending if r not in done and now >= self._deadline(r)]:
            reasons[ref] = (
                ItemTimeoutError,
                f"no result within {self.limits[self.pending[ref][1]]:.0f} s (the time bound: "
                f"{self.runtime.item_timeout_s:.0f} s + {self.runtime.item_timeout_realtime:g} "
                "x the media's duration); its worker was stopped",
            )
        if self.memory_mb and now >= self.next_memory_check:
            self.next_memory_check = now + self.runtime.memory_check_s
            for ref, rss in _worker_memory(self.pending, done).items():
                if rss > self.memory_mb:
                    reasons.setdefault(
                        ref,
                        (
                            ItemMemoryError,
                            f"its worker used {rss:.0f} MB, over the bound of {self.memory_mb} "
                            "MB (ARCHIVE_WORKER_MEMORY_MB or the stage's memory_mb); the worker "
                            "was stopped",
                        ),
                    )
        outcomes = []
        for ref, (error, message) in reasons.items():
            actor, index, _, started = self.pending.pop(ref)
            log.warning("item %s of %s: %s", index, self.stage.name, message)
            self._replace(actor)  # a hung decode or runaway model call: a fresh one
            outcomes.append(ItemOutcome(index, None, error.__name__, message, now - started))
        return outcomes

    def results(self, done: Sequence[Any]) -> list[ItemOutcome]:
        """Outcomes of the items that finished; an item whose worker was lost is queued
        again (`max_item_retries` times) on a replacement."""
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        outcomes = []
        for ref in [r for r in done if r in self.pending]:
            actor, index, item, _ = self.pending.pop(ref)
            try:
                outcome = ray.get(ref)
                self.idle.append(actor)
            except (RayActorError, WorkerCrashedError) as exc:
                self.tries[index] += 1
                log.warning("worker of %s lost on item %s: %s", self.stage.name, index, exc)
                self._replace(actor)
                if self.tries[index] <= self.runtime.max_item_retries:
                    self.queue.appendleft((index, item))
                    continue
                outcome = ItemOutcome(index, None, "WorkerLostError", str(exc))
            outcomes.append(outcome)
        return outcomes

    def close(self) -> None:
        """Workers still running an item (the caller stopped early, or an error) are stopped:
        their results would arrive for nobody. Idle ones stay warm."""
        for actor, *_ in list(self.pending.values()):
            self.lease.drop(actor)
        for actor in list(self.loading.values()):
            self.lease.drop(actor)
        self.lease.release()
