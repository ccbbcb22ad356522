"""Warm model workers: a local Ray that outlives runs, and the registry of its stage workers.

`archive-pipeline workers` (and `archive-pipeline ui`, which starts it beside Dagster) keeps a
local Ray on 127.0.0.1 up until SIGTERM, SIGINT or SIGHUP, and writes its address and auth
token to `<ARCHIVE_HOME>/workers.json` (mode 0600; removed when it stops). A run whose Ray
address is `local` joins that Ray instead of starting its own, and leases stage workers from
the `WorkerRegistry` actor. A worker keeps the models of the stages it has set up, so the next
run of a stage on the same worker loads nothing. The registry is plain bookkeeping (no Ray
here, so it is tested alone): a run's lease lapses when the run stops renewing it (killed),
and workers started from other code are stopped, never reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from archive_pipeline.config import settings

SERVICE_FILE = "workers.json"
NAMESPACE = "archive_pipeline"
REGISTRY = "archive-worker-registry"
MAX_LOADED_STAGES = 8  # stages (their models) a worker keeps set up, least recently used go
LEASE_S = 120.0  # a lease not renewed for this long is free (its run was killed)
RENEW_S = 10.0  # how often a run renews its lease while it streams


@dataclass(frozen=True)
class ServiceInfo:
    """Where the warm model service's Ray listens, its token, and the process that keeps it."""

    address: str
    token: str
    pid: int
    started: str
    num_cpus: float = 0.0

    def write(self, path: Path) -> None:
        """Write the file runs read (owner-only: it holds the cluster's token)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f)
        tmp.replace(path)


def service_file(home: Path) -> Path:
    """Where the model service of an ARCHIVE_HOME writes its address."""
    return Path(home) / SERVICE_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listening(address: str, timeout_s: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def read_service(path: Path | None) -> ServiceInfo | None:
    """The running model service written at `path`, or None (no file, its process gone, or
    its Ray not answering: a file left by a killed service is ignored)."""
    if path is None:
        return None
    try:
        info = ServiceInfo(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not _pid_alive(info.pid) or not _listening(info.address):
        return None
    return info


def code_digest() -> str:
    """Identity of the code a worker runs: this package's files (paths, sizes, times) and the
    interpreter. A worker started from other code is not reused (its imports are stale)."""
    import sys

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1(sys.executable.encode())
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


@dataclass
class WarmWorker:
    """One named worker actor, what it is, which stages it has set up, and who leases it."""

    name: str
    shape: str
    code: str
    keys: list[str] = field(default_factory=list)  # stage keys set up, most recent last
    lease: str | None = None
    renewed: float = 0.0

    def use(self, key: str) -> None:
        """Record that `key` is (or will be) set up on it, as the worker's own LRU does."""
        if key in self.keys:
            self.keys.remove(key)
        self.keys.append(key)
        del self.keys[:-MAX_LOADED_STAGES]


@dataclass(frozen=True)
class Grant:
    """What `acquire` gives a run: workers to reuse, names of workers to start, names of idle
    workers to stop first (other shapes or older code: they hold what the new ones need)."""

    reuse: list[str]
    create: list[str]
    stop: list[str]


class WorkerRegistry:
    """Who holds which warm worker (the model service runs it as a named detached actor; one
    call at a time, so two runs never lease one worker)."""

    def __init__(self, lease_s: float = LEASE_S, clock: Callable[[], float] = time.monotonic):
        self.lease_s = lease_s
        self.clock = clock
        self.workers: dict[str, WarmWorker] = {}

    def _expire(self) -> None:
        now = self.clock()
        for w in self.workers.values():
            if w.lease is not None and now - w.renewed > self.lease_s:
                w.lease = None

    def _new(self, lease: str, shape: str, code: str, key: str) -> str:
        name = f"archive-worker-{uuid.uuid4().hex[:12]}"
        self.workers[name] = w = WarmWorker(name, shape, code, lease=lease, renewed=self.clock())
        w.use(key)
        return name

    def acquire(
        self, lease: str, shape: str, code: str, key: str, n: int, capacity: int | None = None
    ) -> Grant:
        """Lease up to `n` workers of `shape` running `code` for `lease`, those that have
        `key` set up first; names for the missing ones, and the idle ones to stop. With
        `capacity` (how many such workers the cluster holds), no more workers are started
        than fit beside those alive: a worker that cannot start would wait for resources
        that idle or leased workers hold, so the run gets fewer (or none: it asks again)."""
        self._expire()
        idle = [w for w in self.workers.values() if w.lease is None]
        fits = [w for w in idle if w.shape == shape and w.code == code]
        fits.sort(key=lambda w: (key not in w.keys, -len(w.keys)))
        reuse = fits[:n]
        for w in reuse:
            w.lease, w.renewed = lease, self.clock()
            w.use(key)
        stop = [w.name for w in idle if w.code != code]
        missing = n - len(reuse)
        if missing:
            stop += [w.name for w in idle if w.code == code and w.shape != shape]
        for name in stop:
            del self.workers[name]
        if capacity is not None:
            missing = min(missing, max(0, capacity - len(self.workers)))
        create = [self._new(lease, shape, code, key) for _ in range(missing)]
        return Grant([w.name for w in reuse], create, stop)

    def add(self, lease: str, shape: str, code: str, key: str) -> str:
        """A name for one more worker under `lease` (one that replaces a stopped worker)."""
        return self._new(lease, shape, code, key)

    def forget(self, name: str) -> None:
        """A worker was stopped (item time or memory bound, or lost)."""
        self.workers.pop(name, None)

    def renew(self, lease: str) -> int:
        """Keep `lease`'s workers; how many it holds."""
        now, held = self.clock(), 0
        for w in self.workers.values():
            if w.lease == lease:
                w.renewed, held = now, held + 1
        return held

    def release(self, lease: str) -> None:
        """The run is done with its workers: they stay warm for the next."""
        for w in self.workers.values():
            if w.lease == lease:
                w.lease = None

    def names(self) -> list[str]:
        """Every worker the registry knows (to stop them all)."""
        return list(self.workers)

    def describe(self) -> list[dict]:
        """Each worker: name, shape, stages set up, leased or idle."""
        self._expire()
        return [
            {"name": w.name, "shape": w.shape, "stages": list(w.keys), "leased": bool(w.lease)}
            for w in self.workers.values()
        ]


def start_registry():
    """The registry actor of the connected Ray (started if it is not there: on a cluster it
    lives until the cluster stops, and every run that joins the cluster leases from it)."""
    import ray

    registry = (
        ray.remote(WorkerRegistry)
        .options(
            name=REGISTRY, namespace=NAMESPACE, lifetime="detached", num_cpus=0, get_if_exists=True
        )
        .remote()
    )
    ray.get(registry.describe.remote(), timeout=60)
    return registry


def serve(runtime, path: Path, *, announce: Callable[[str], None] = print) -> None:
    """Keep a local Ray with the worker registry up until SIGTERM, SIGINT or SIGHUP, with its
    address at `path`; then stop every warm worker and Ray, and remove `path`. `runtime` is the
    `RayRuntime` to start (address `local`)."""
    import signal
    import threading

    import ray

    runtime.ensure_started(join_service=False)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # after Ray's own handlers
        signal.signal(sig, lambda *_: stopping.set())
    registry = start_registry()
    info = ServiceInfo(
        address=ray.get_runtime_context().gcs_address,
        token=settings.library_value("RAY_AUTH_TOKEN") or "",
        pid=os.getpid(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        num_cpus=float(ray.cluster_resources().get("CPU", 0.0)),
    )
    info.write(path)
    announce(
        f"warm model workers: Ray at {info.address} ({info.num_cpus:g} CPUs), pid {info.pid}; "
        f"runs over this ARCHIVE_HOME join it ({path})"
    )
    try:
        while not stopping.is_set():
            stopping.wait(1.0)
    finally:
        with contextlib.suppress(OSError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        with contextlib.suppress(Exception):
            for name in ray.get(registry.names.remote(), timeout=10):
                with contextlib.suppress(ValueError):
                    ray.kill(ray.get_actor(name, namespace=NAMESPACE))
        runtime.shutdown()
