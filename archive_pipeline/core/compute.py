"""Run Dagster-free stages over items on Ray (DESIGN §6), or inline for debugging.

A stage declares its resources; `RayRuntime.map` checks that some node can host one actor,
starts a pool of actors (each calls `stage.setup()` once), streams items through them and
returns one `ItemOutcome` per item: the value, or the error as data. Lost workers are retried.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import urlparse

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


def run_inline(
    stage: Stage, items: Sequence[Any], *, on_outcome: OnOutcome | None = None
) -> list[ItemOutcome]:
    """Run a stage in this process, one item after another (debugging and small tests);
    `on_outcome` is called as each item finishes."""
    try:
        stage.setup()
    except Exception as exc:
        raise StageSetupError(f"stage {stage.name!r} could not start: {exc}") from exc
    outcomes = []
    for i, item in enumerate(items):
        outcomes.append(_run_one(stage, i, item))
        if on_outcome is not None:
            on_outcome(outcomes[-1])
    return outcomes


class _StageActor:
    """Ray actor that owns one stage instance (the model is loaded once per actor)."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.error: str | None = None
        try:
            stage.setup()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> str | None:
        return self.error

    def run(self, index: int, item: Any) -> ItemOutcome:
        return _run_one(self.stage, index, item)


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
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
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


DEFAULT_ITEM_TIMEOUT_S = 600.0
DEFAULT_ITEM_TIMEOUT_REALTIME = 10.0


class ItemTimeoutError(RuntimeError):
    """An item ran past its time bound (its worker is stopped and replaced)."""


class RayRuntime:
    """Starts or joins Ray once, checks stage resources, and maps stages over items."""

    def __init__(
        self,
        address: str = "local",
        *,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        connect_timeout_s: float = 30.0,
        resource_wait_s: float = 0.0,
        include_dashboard: bool = False,
        object_store_memory_mb: int | None = None,
        max_item_retries: int = 2,
        item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S,
        item_timeout_realtime: float = DEFAULT_ITEM_TIMEOUT_REALTIME,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.connect_timeout_s = connect_timeout_s
        self.resource_wait_s = resource_wait_s
        self.include_dashboard = include_dashboard
        self.object_store_memory_mb = object_store_memory_mb
        self.max_item_retries = max_item_retries
        self.item_timeout_s = item_timeout_s
        self.item_timeout_realtime = item_timeout_realtime
        self.started_here = False
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start local Ray on 127.0.0.1, or connect to the configured cluster (bounded wait)."""
        with self._lock:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            local = self.address in ("", "local")
            if local:
                _bind_loopback_only()
                _quiet_token_auth_notice()
            import ray

            if ray.is_initialized():
                return
            if local:
                with exec_children():  # Ray's daemons are started by fork + exec
                    ray.init(
                        num_cpus=self.num_cpus,
                        num_gpus=self.num_gpus,
                        include_dashboard=self.include_dashboard,
                        dashboard_host=LOOPBACK,
                        object_store_memory=(self.object_store_memory_mb or 0) * 1024**2 or None,
                        _node_ip_address=LOOPBACK,
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                        configure_logging=False,
                    )
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
            self.started_here = True

    def shutdown(self) -> None:
        """Stop Ray if this runtime started or joined it."""
        if self.started_here:
            import ray

            ray.shutdown()
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
        """Process every item with a pool of stage actors; return outcomes in item order
        (`on_outcome` is called in the driver as each item finishes, in finishing order).

        An item that runs past `time_limit(duration)` (`durations`: its media seconds, when
        known) becomes an `ItemTimeoutError` outcome; its worker is stopped and replaced, and
        the other items go on."""
        if not items:
            return []
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        capacity = self.check_feasible(stage.name, stage.resources)
        n_actors = max(1, min(len(items), capacity, stage.resources.max_actors or capacity))
        actor_cls = ray.remote(_StageActor).options(
            **stage.resources.ray_options(), max_restarts=0, name=None
        )
        stage_ref = ray.put(stage)

        def new_actor():
            actor = actor_cls.remote(stage_ref)
            error = ray.get(actor.ready.remote())
            if error:
                ray.kill(actor)
                raise StageSetupError(f"stage {stage.name!r} could not start: {error}")
            return actor

        actors = [actor_cls.remote(stage_ref) for _ in range(n_actors)]
        errors = [e for e in ray.get([a.ready.remote() for a in actors]) if e]
        if errors:
            for actor in actors:
                ray.kill(actor)
            raise StageSetupError(f"stage {stage.name!r} could not start: {errors[0]}")
        outcomes: dict[int, ItemOutcome] = {}
        queue = collections.deque(enumerate(items))
        tries: collections.Counter[int] = collections.Counter()
        idle = list(actors)
        pending: dict[Any, tuple[Any, int, Any]] = {}
        deadlines: dict[Any, float] = {}
        limits = [self.time_limit(d) for d in (durations or [None] * len(items))]
        try:
            while queue or pending:
                while queue and idle:
                    actor = idle.pop()
                    index, item = queue.popleft()
                    ref = actor.run.remote(index, item)
                    pending[ref] = (actor, index, item)
                    deadlines[ref] = time.monotonic() + limits[index]
                wait_s = max(0.05, min(deadlines.values()) - time.monotonic())
                done, _ = ray.wait(list(pending), num_returns=1, timeout=wait_s)
                for ref in [r for r in pending if r not in done]:
                    if time.monotonic() < deadlines[ref]:
                        continue
                    actor, index, item = pending.pop(ref)
                    del deadlines[ref]
                    ray.kill(actor)  # a hung decode or model call: stop it, start a fresh one
                    log.warning("item %s of %s timed out; worker replaced", index, stage.name)
                    outcomes[index] = ItemOutcome(
                        index,
                        None,
                        ItemTimeoutError.__name__,
                        f"no result within {limits[index]:.0f} s (the time bound: "
                        f"{self.item_timeout_s:.0f} s + {self.item_timeout_realtime:g} x the "
                        "media's duration); its worker was stopped",
                        limits[index],
                    )
                    if on_outcome is not None:
                        on_outcome(outcomes[index])
                    idle.append(new_actor())
                for ref in done:
                    del deadlines[ref]
                    actor, index, item = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                        idle.append(actor)
                    except (RayActorError, WorkerCrashedError) as exc:
                        tries[index] += 1
                        log.warning("worker of %s lost on item %s: %s", stage.name, index, exc)
                        if tries[index] <= self.max_item_retries:
                            queue.appendleft((index, item))
                            outcome = None
                        else:
                            outcome = ItemOutcome(index, None, "WorkerLostError", str(exc))
                        idle.append(new_actor())
                    if outcome is not None:
                        outcomes[index] = outcome
                        if on_outcome is not None:
                            on_outcome(outcome)
        finally:
            for actor in idle + [a for a, _, _ in pending.values()]:
                ray.kill(actor)
        return [outcomes[i] for i in range(len(items))]
