"""The stage workers: Ray actors that keep each stage's models loaded, in pools per resource
shape, this process's own or leased from the warm model service (`core.workers`)."""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import time
import uuid
from typing import Any

from archive_pipeline.core import workers as warm
from archive_pipeline.core.compute import ItemOutcome, Stage, StageResources, run_one

log = logging.getLogger(__name__)


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
        return run_one(self.stages[key], index, item)

    def rss_mb(self) -> float:
        """Resident memory of this worker and its child processes (decoders), MB."""
        import psutil

        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total / 1024**2


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


def current() -> _WarmPools | _SharedPools:
    """The pools this process's streams lease their workers from now."""
    return _POOLS


def share(registry: Any) -> None:
    """Lease the warm workers of the model service (or cluster) whose registry this is."""
    global _POOLS
    _POOLS = _SharedPools(registry)


def reset() -> bool:
    """Stop this process's own workers (the shared ones stay) and start afresh; whether they
    were shared."""
    global _POOLS
    shared = isinstance(_POOLS, _SharedPools)
    _POOLS.clear()
    _POOLS = _WarmPools()
    return shared


def use_cluster_registry() -> None:
    """Lease warm workers on a cluster where `archive-pipeline workers` started the registry
    (else this run's workers are its own, stopped when it ends)."""
    import ray

    try:
        registry = ray.get_actor(warm.REGISTRY, namespace=warm.NAMESPACE)
    except ValueError:
        return
    share(registry)
    log.info("leasing the cluster's warm model workers")
