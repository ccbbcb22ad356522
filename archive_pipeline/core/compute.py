"""Run Dagster-free stages over items on Ray (DESIGN §6), or inline for debugging.

A stage declares its resources; `RayRuntime.map` checks that some node can host one actor,
starts a pool of actors (each calls `stage.setup()` once), streams items through them and
returns one `ItemOutcome` per item: the value, or the error as data. Lost workers are retried.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from archive_pipeline import settings
from archive_pipeline.core import workers as warm
from archive_pipeline.core.forks import exec_children

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class StageResources:
    """What one worker (actor) of a stage needs: CPUs, fractional GPUs, memory, custom resources."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int = 0
    custom: Mapping[str, float] = field(default_factory=dict)
    max_actors: int | None = None  # cap on parallel workers; None = as many as fit

    def request(self) -> dict[str, float]:
        """The resource request in Ray's names (CPU, GPU, memory in bytes, custom)."""
        req = {"CPU": self.num_cpus, "GPU": self.num_gpus, "memory": self.memory_mb * 1024**2}
        req.update(self.custom)
        return {k: float(v) for k, v in req.items() if v}

    def ray_options(self) -> dict[str, Any]:
        """Keyword arguments for `ray.remote(...).options(...)`."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_mb:
            options["memory"] = self.memory_mb * 1024**2
        if self.custom:
            options["resources"] = dict(self.custom)
        return options

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> StageResources:
        """Return a copy with configured values (keys: num_cpus, num_gpus, memory_mb, ...)."""
        if not overrides:
            return self
        unknown = set(overrides) - {"num_cpus", "num_gpus", "memory_mb", "custom", "max_actors"}
        if unknown:
            raise ValueError(f"unknown stage resource settings {sorted(unknown)}")
        return replace(self, **overrides)


class Stage(Protocol):
    """A unit of pipeline work: `setup()` once per worker, then `process(item)` per item."""

    name: str
    code_version: str
    resources: StageResources

    def setup(self) -> None: ...
    def process(self, item: Any) -> Any: ...


@dataclass(frozen=True)
class ItemOutcome:
    """The result of one item: its value, or its error class and message."""

    index: int
    value: Any = None
    error_class: str | None = None
    message: str | None = None
    seconds: float = 0.0
    detail: str | None = None  # the worker's traceback (last lines) of a failed item

    @property
    def ok(self) -> bool:
        """Whether the item was processed without error."""
        return self.error_class is None


class StageSetupError(RuntimeError):
    """A stage could not start (e.g. its model is not available): the whole stage fails."""


class InfeasibleResourcesError(RuntimeError):
    """No node of the Ray cluster offers what a stage asks for."""


class RayConnectError(ConnectionError):
    """The configured Ray cluster could not be reached in time."""


def _run_one(stage: Stage, index: int, item: Any) -> ItemOutcome:
    start = time.perf_counter()
    try:
        value = stage.process(item)
    except Exception as exc:  # errors are data: the item is recorded as failed
        return ItemOutcome(
            index,
            None,
            type(exc).__name__,
            str(exc) or repr(exc),
            time.perf_counter() - start,
            detail=_traceback_tail(),
        )
    return ItemOutcome(index, value, seconds=time.perf_counter() - start)


def _traceback_tail(limit: int = 2000) -> str:
    """The current exception's traceback, its last `limit` characters (for the run log)."""
    text = traceback.format_exc()
    return text if len(text) <= limit else "..." + text[-limit:]


OnOutcome = Callable[[ItemOutcome], None]


def stream_inline(stage: Stage, items: Sequence[Any]) -> Iterator[ItemOutcome]:
    """Run a stage in this process, one item after another, yielding each outcome."""
    try:
        stage.setup()
    except Exception as exc:
        raise StageSetupError(f"stage {stage.name!r} could not start: {exc}") from exc
    for i, item in enumerate(items):
        yield _run_one(stage, i, item)


def run_inline(
    stage: Stage, items: Sequence[Any], *, on_outcome: OnOutcome | None = None
) -> list[ItemOutcome]:
    """Run a stage in this process, one item after another (debugging and small tests);
    `on_outcome` is called as each item finishes."""
    outcomes = []
    for outcome in stream_inline(stage, items):
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


class _StageWorker:
    """Ray actor that hosts stages: each stage is set up (its model loaded) once per worker and
    kept, so later stages, decades and (with the model service) runs reuse the warm process
    (its imports) and, for the same stage, its models. One item at a time; `rss_mb` answers
    while an item runs (its own concurrency group) so the driver can bound a worker's memory."""

    def __init__(self, max_loaded: int = warm.MAX_LOADED_STAGES) -> None:
        self.stages: collections.OrderedDict[str, Stage] = collections.OrderedDict()
        self.max_loaded = max_loaded

    def load(self, key: str, stage: Stage) -> str | None:
        """Set up `stage` under `key` unless it is loaded; the error text if setup fails."""
        if key in self.stages:
            self.stages.move_to_end(key)
            return None
        try:
            stage.setup()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        self.stages[key] = stage
        while len(self.stages) > self.max_loaded:  # least recently used stage's models go
            self.stages.popitem(last=False)
            gc.collect()
        return None

    def run(self, key: str, index: int, item: Any) -> ItemOutcome:
        return _run_one(self.stages[key], index, item)

    def rss_mb(self) -> float:
        """Resident memory of this worker and its child processes (decoders), MB."""
        import psutil

        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total / 1024**2


def stage_key(stage: Stage) -> str:
    """Identity of a stage configuration within a run (its name and pickled state)."""
    import hashlib

    from ray import cloudpickle

    return f"{stage.name}:{hashlib.sha1(cloudpickle.dumps(stage)).hexdigest()[:16]}"


def _fits(node: Mapping[str, float], request: Mapping[str, float]) -> int:
    """How many actors with `request` fit on a node with these total resources."""
    counts = [int(node.get(name, 0.0) // amount) for name, amount in request.items() if amount > 0]
    return min(counts) if counts else 1


def _tcp_reachable(address: str, timeout_s: float) -> None:
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = parsed.hostname, parsed.port or (10001 if parsed.scheme == "ray" else 6379)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout_s)):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.5)
    raise RayConnectError(
        f"cannot reach the Ray cluster at {address} within {timeout_s:.0f} s ({last}); "
        "check ARCHIVE_RAY_ADDRESS or start the cluster"
    )


def _bind_loopback_only() -> None:
    """Make a local Ray bind 127.0.0.1 only (without this it binds every interface).

    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when `ray` is imported (and its daemons read it
    from their environment), so set the variable and, if Ray is already imported, the constant.
    """
    settings.set_for_children("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import sys

    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def _not_token_auth_notice(record: logging.LogRecord) -> bool:
    return "Token authentication is enabled" not in record.getMessage()


def _quiet_token_auth_notice() -> None:
    """Drop Ray's notice that a new local cluster uses token authentication (its default, and
    what we want). Setting RAY_AUTH_MODE=token instead would silence it too, but only if set
    before Ray is first imported: a driver that read the config earlier then fails to connect.
    (addFilter ignores a filter already there, so repeated starts add nothing.)"""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    logger.addFilter(_not_token_auth_notice)


class ItemTimeoutError(RuntimeError):
    """An item ran past its time bound (its worker is stopped and replaced)."""


def _stop_item(stopped, pending, now, ref, error: type[Exception], message: str) -> None:
    """Record that the item of `ref` is to be stopped (first reason wins)."""
    _, index, _, started = pending[ref]
    stopped.setdefault(ref, ItemOutcome(index, None, error.__name__, message, now - started))


class ItemMemoryError(RuntimeError):
    """An item's worker grew past the memory bound (the worker is stopped and replaced)."""


def _shape(resources: StageResources) -> str:
    """The pool a worker with these resources belongs to."""
    return repr(sorted(resources.ray_options().items()))


PROBE = {"concurrency_group": "probe"}  # worker calls answered while an item runs


def _start_worker(resources: StageResources, **options: Any) -> Any:
    """Start one stage worker actor with `resources` (and e.g. a name and lifetime)."""
    import ray

    cls = ray.remote(concurrency_groups={"probe": 1})(_StageWorker)
    return cls.options(**resources.ray_options(), max_restarts=0, **options).remote()


class _WarmPools:
    """The warm stage workers of this process's Ray session, one pool per resource shape.

    Shared by every `RayRuntime` of the process, so the stages and decades of a run reuse the
    same workers; forgotten when Ray is shut down (a new session starts new ones)."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.pools: dict[str, list[Any]] = {}

    def _current(self) -> None:
        import ray

        session = ray.get_runtime_context().get_job_id()
        if session != self.session:  # Ray was restarted: the old handles are dead
            self.session, self.pools = session, {}

    def _start(self, resources: StageResources) -> Any:
        return _start_worker(resources)

    def lease(self, resources: StageResources, key: str) -> _LocalLease:
        """The workers one stream uses (this process's own: nothing to lease)."""
        return _LocalLease(self, resources)

    def get(self, resources: StageResources, n: int) -> list[Any]:
        """`n` workers of this resource shape, started if there are fewer. Workers of other
        shapes are stopped first: they hold resources this shape may need."""
        import ray

        self._current()
        shape = _shape(resources)
        for other in [s for s in self.pools if s != shape]:
            for actor in self.pools.pop(other):
                ray.kill(actor)
        pool = self.pools.setdefault(shape, [])
        pool.extend(self._start(resources) for _ in range(n - len(pool)))
        return pool[:n]

    def drop(self, actor: Any) -> None:
        """Stop a worker and forget it."""
        import ray

        for pool in self.pools.values():
            if actor in pool:
                pool.remove(actor)
        ray.kill(actor)

    def replace(self, resources: StageResources, actor: Any) -> Any:
        """Stop a worker and start a fresh one of the same shape in its place."""
        self.drop(actor)
        fresh = self._start(resources)
        self.pools.setdefault(_shape(resources), []).append(fresh)
        return fresh

    def clear(self) -> None:
        """Stop every warm worker."""
        import ray

        if ray.is_initialized():
            for pool in self.pools.values():
                for actor in pool:
                    ray.kill(actor)
        self.pools = {}


class _LocalLease:
    """A stream's view of this process's own pools."""

    def __init__(self, pools: _WarmPools, resources: StageResources) -> None:
        self.pools, self.resources = pools, resources

    def get(self, n: int, capacity: int) -> list[Any]:
        return self.pools.get(self.resources, n)

    def replace(self, actor: Any) -> Any:
        return self.pools.replace(self.resources, actor)

    def drop(self, actor: Any) -> None:
        self.pools.drop(actor)

    def renew(self) -> None:
        """Nothing to renew: the workers are this process's."""

    def release(self) -> None:
        """Idle workers stay in the pool for the next stage."""


class _SharedPools:
    """The warm workers of the model service (`core.workers`), leased from its registry:
    named detached actors that outlive this run and keep their models for the next."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.code = warm.code_digest()

    def lease(self, resources: StageResources, key: str) -> _SharedLease:
        """Lease workers for one stream (released at its end, lapses if this run dies)."""
        return _SharedLease(self, resources, key)

    def clear(self) -> None:
        """The service's workers are not this run's to stop."""


class _SharedLease:
    """One stream's lease of the model service's workers."""

    def __init__(self, pools: _SharedPools, resources: StageResources, key: str) -> None:
        self.registry, self.code = pools.registry, pools.code
        self.resources, self.key, self.shape = resources, key, _shape(resources)
        self.id = uuid.uuid4().hex
        self.names: dict[str, str] = {}  # actor id -> name
        self.renewed = time.monotonic()

    def _start(self, name: str) -> Any:
        actor = _start_worker(
            self.resources, name=name, namespace=warm.NAMESPACE, lifetime="detached"
        )
        self.names[actor._actor_id.hex()] = name
        return actor

    def _handle(self, name: str) -> Any:
        import ray

        actor = ray.get_actor(name, namespace=warm.NAMESPACE)
        self.names[actor._actor_id.hex()] = name
        return actor

    def get(self, n: int, capacity: int) -> list[Any]:
        """Up to `n` workers (at least one: while other runs lease every worker the cluster
        holds, this waits for one to be released)."""
        import ray

        waiting = False
        while True:
            grant = ray.get(
                self.registry.acquire.remote(self.id, self.shape, self.code, self.key, n, capacity),
                timeout=60,
            )
            for name in grant.stop:  # idle workers of another shape or older code
                with contextlib.suppress(ValueError):
                    ray.kill(ray.get_actor(name, namespace=warm.NAMESPACE))
            actors = []
            for name in grant.reuse:
                try:
                    actors.append(self._handle(name))
                except ValueError:  # it died since (e.g. Ray's OOM killer): a fresh one
                    self.registry.forget.remote(name)
                    actors.append(self._start(ray.get(self._add())))
            actors += [self._start(name) for name in grant.create]
            if actors:
                return actors
            if not waiting:
                waiting = True
                log.info("all %d warm workers are leased by other runs: waiting for one", capacity)
            time.sleep(1.0)

    def _add(self) -> Any:
        return self.registry.add.remote(self.id, self.shape, self.code, self.key)

    def drop(self, actor: Any) -> None:
        import ray

        name = self.names.pop(actor._actor_id.hex(), None)
        if name is not None:
            self.registry.forget.remote(name)
        ray.kill(actor)

    def replace(self, actor: Any) -> Any:
        import ray

        self.drop(actor)
        return self._start(ray.get(self._add(), timeout=60))

    def renew(self) -> None:
        if time.monotonic() - self.renewed >= warm.RENEW_S:
            self.renewed = time.monotonic()
            self.registry.renew.remote(self.id)

    def release(self) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.get(self.registry.release.remote(self.id), timeout=30)


_POOLS: _WarmPools | _SharedPools = _WarmPools()


def _use_cluster_registry() -> None:
    """Lease warm workers on a cluster where `archive-pipeline workers` started the registry
    (else this run's workers are its own, stopped when it ends)."""
    global _POOLS
    import ray

    try:
        registry = ray.get_actor(warm.REGISTRY, namespace=warm.NAMESPACE)
    except ValueError:
        return
    _POOLS = _SharedPools(registry)
    log.info("leasing the cluster's warm model workers")


# Ray's Unix sockets live at <temp>/session_<date>_<pid>/sockets/<name>; a socket path holds
# at most 107 bytes, so a longer temp folder is replaced by a short one in the system's.
MAX_RAY_TEMP_CHARS = 40
ITEM_TIMEOUT_REALTIME = 10.0  # an item's time bound grows this many seconds per media second
CONNECT_TIMEOUT_S = 30  # how long a cluster address may take to answer before the run fails
_LOCAL_AUTH_TOKEN = uuid.uuid4().hex + uuid.uuid4().hex


def ray_session_root(temp_dir: str) -> Path:
    """This process's own Ray temp folder: <temp_dir>/<pid>, or /tmp/archive-ray/<pid> when
    temp_dir is too long for Ray's sockets."""
    base = Path(temp_dir)
    if len(str(base)) > MAX_RAY_TEMP_CHARS:
        base = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / "archive-ray"
    return base / str(os.getpid())


_LOCAL_SESSION: list[Path] = []  # the session folder of the local Ray this process started


def stop_ray() -> bool:
    """Stop Ray in this process (its warm workers first) and remove the session folder of a
    local Ray it started; or, when it had joined warm model workers, leave them and disconnect.
    Whether it had joined them."""
    import ray

    global _POOLS
    shared = isinstance(_POOLS, _SharedPools)
    _POOLS.clear()
    _POOLS = _WarmPools()
    if ray.is_initialized():
        ray.shutdown()
    for folder in _LOCAL_SESSION:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the shared short base, once no run uses it
            folder.parent.rmdir()
    _LOCAL_SESSION.clear()
    return shared


def _transient_start_error(exc: Exception) -> bool:
    text = str(exc)
    return "timed out during startup" in text or "Failed to connect to GCS" in text


class RayStartError(RuntimeError):
    """A local Ray did not start (after the bounded retries)."""


class RayRuntime:
    """Starts or joins Ray once, checks stage resources, and maps stages over items."""

    def __init__(
        self,
        address: str = settings.RAY_ADDRESS.default,
        *,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
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
                _bind_loopback_only()
                _quiet_token_auth_notice()
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
                settings.set_library_default("RAY_AUTH_TOKEN", _LOCAL_AUTH_TOKEN)
                session = ray_session_root(self.temp_dir) if self.temp_dir else None
                with exec_children():  # Ray's daemons are started by fork + exec
                    self._start_local(ray, session)
                    _LOCAL_SESSION[:] = [session] if session else []
                    from archive_pipeline.core.reaper import watch

                    watch(remove=session)  # a driver killed with -9 leaves no Ray behind
            else:
                if self.address != "auto":
                    _tcp_reachable(self.address, self.connect_timeout_s)
                try:
                    ray.init(
                        address=self.address,
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                        configure_logging=False,
                    )
                except ConnectionError as exc:
                    raise RayConnectError(f"cannot join Ray at {self.address}: {exc}") from exc
                _use_cluster_registry()
            self.started_here = True

    def _join_service(self) -> bool:
        """Join the model service's Ray and lease its warm workers; False (this run starts
        its own Ray) when none runs or it cannot be joined, saying why."""
        global _POOLS
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
                _node_ip_address=LOOPBACK,
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
        _POOLS = _SharedPools(registry)
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
                    dashboard_host=LOOPBACK,
                    object_store_memory=(self.object_store_memory_mb or 0) * 1024**2 or None,
                    _node_ip_address=LOOPBACK,
                    _temp_dir=str(session) if session else None,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                )
                return
            except Exception as exc:  # Ray raises a bare Exception for this one
                if attempt == self.start_attempts or not _transient_start_error(exc):
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
            stop_ray()
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
        lease = _POOLS.lease(stage.resources, key)
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
            ref: p[0].rss_mb.options(**PROBE).remote()
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


class Compute(Protocol):
    """Something that maps a stage over items: `RayRuntime` or `InlineCompute`."""

    def stream(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        durations: Sequence[float | None] | None = None,
    ) -> Iterator[ItemOutcome]:
        """Yield one outcome per item as each finishes (in finishing order)."""

    def map(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        on_outcome: OnOutcome | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> list[ItemOutcome]:
        """All outcomes in item order (small inputs and tests)."""


class InlineCompute:
    """Runs stages in the calling process (debugging, and tests that are not about Ray)."""

    def stream(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        durations: Sequence[float | None] | None = None,
    ) -> Iterator[ItemOutcome]:
        """Process items one after another in this process (no time bound: debugging)."""
        if items:
            yield from stream_inline(stage, items)

    def map(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        on_outcome: OnOutcome | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> list[ItemOutcome]:
        """Process items one after another in this process (no time bound: debugging)."""
        return run_inline(stage, items, on_outcome=on_outcome) if items else []
