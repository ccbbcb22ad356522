"""One writer per scope of a warehouse (DESIGN §9a): a lease kept beside the tables.

Lance commits two concurrent inserts of the same keys without a conflict (FIELD-NOTES), so
whoever writes a (decade, table) scope first takes its lease, whatever started the run (the UI,
a sensor, a backfill, the CLI, another host). A second writer waits for it (up to a bound) and
then fails with a message naming the holder; it never commits beside it.

- **Local folder** (or a mount): `<root>/_leases/<name>.lock`, held with `flock`. The kernel
  releases it when the holder's process ends, `kill -9` included, so nothing expires by time.
  On NFS, Linux maps `flock` to POSIX locks, which NFSv4 servers honour across hosts.
- **S3** (`s3://bucket/prefix`): the object `<prefix>/_leases/<name>.json`, created with a
  conditional put (`If-None-Match: *`), renewed every third of its lifetime with `If-Match` on
  its ETag and deleted with `If-Match`. A holder that stops renewing (killed, partitioned) loses
  the lease after `ttl_s`; the next writer takes it over with `If-Match` on the stale ETag, so
  of two writers racing for an expired lease exactly one wins. A holder that finds its lease
  taken (`check()`) stops before its next commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

log = logging.getLogger(__name__)

LEASES = "_leases"
NOTES = "_notes"  # small JSON documents about the warehouse (which inbox it mirrors)


class WriterBusyError(RuntimeError):
    """Another writer holds the scope's lease (the message names it)."""


class LeaseLostError(RuntimeError):
    """This writer's lease expired and another writer took it: nothing more is committed."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: what writes, on which host and process, since and until when."""

    name: str
    what: str
    host: str
    pid: int
    since: float
    expires: float | None = None  # S3 only (a local lease ends with its process)
    token: str = ""

    def describe(self) -> str:
        """The holder as a console line names it."""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        expiry = ""
        if self.expires is not None:
            expiry = f", lease until {time.strftime('%H:%M:%S', time.localtime(self.expires))}"
        return f"{self.what} on {self.host} (pid {self.pid}) since {since}{expiry}"


class _Backend(Protocol):
    def try_acquire(self, holder: Holder) -> Holder | None:
        """None when acquired; else the current holder (as far as it can be read)."""

    def renew(self, holder: Holder) -> bool:
        """Extend the lease; False when it was lost."""

    def release(self, holder: Holder) -> None:
        """Give it up (only if still ours)."""

    def read_note(self, name: str) -> dict | None:
        """A JSON document beside the tables, or None."""

    def write_note(self, name: str, value: dict) -> None:
        """Write a JSON document beside the tables."""

    ttl_s: float | None


class LocalLeases:
    """flock-held lease files in a folder (released by the kernel with their process)."""

    ttl_s = None

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, Any] = {}

    def try_acquire(self, holder: Holder) -> Holder | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{holder.name}.lock"
        handle = open(path, "a+")  # noqa: SIM115  (kept open while the lease is held)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read()
            handle.close()
            return _parse(text) or Holder(holder.name, "another writer", "?", 0, time.time())
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(asdict(holder)))
        handle.flush()
        self._files[holder.token] = handle
        return None

    def renew(self, holder: Holder) -> bool:
        return holder.token in self._files

    def release(self, holder: Holder) -> None:
        handle = self._files.pop(holder.token, None)
        if handle is not None:
            handle.close()  # closing the descriptor releases the flock

    def _note(self, name: str) -> Path:
        return self.folder.parent / NOTES / f"{name}.json"

    def read_note(self, name: str) -> dict | None:
        """A small JSON document kept beside the tables (None: none yet)."""
        path = self._note(name)
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def write_note(self, name: str, value: dict) -> None:
        """Write (replace atomically) a JSON document beside the tables."""
        path = self._note(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}")
        part.write_text(json.dumps(value, indent=1))
        os.replace(part, path)


class S3Leases:
    """Lease objects in S3 written with conditional puts (If-None-Match / If-Match)."""

    def __init__(
        self, bucket: str, prefix: str, *, ttl_s: float, client_options: Mapping[str, Any]
    ) -> None:
        self.bucket, self.prefix, self.ttl_s = bucket, prefix.strip("/"), ttl_s
        self.client_options = dict(client_options)
        self._etags: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def client(self):
        return s3_client(self.client_options)

    def _key(self, name: str, folder: str = LEASES) -> str:
        return "/".join(p for p in (self.prefix, folder, f"{name}.json") if p)

    def _put(self, holder: Holder, **condition: str) -> str | None:
        """Write the lease object under a condition: its new ETag, or None if refused."""
        from botocore.exceptions import ClientError

        body = json.dumps(asdict(holder)).encode()
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._key(holder.name), Body=body, **condition
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return None
            raise
        return response["ETag"]

    def try_acquire(self, holder: Holder) -> Holder | None:
        from botocore.exceptions import ClientError

        etag = self._put(holder, IfNoneMatch="*")
        if etag is None:
            try:
                current = self.client.get_object(Bucket=self.bucket, Key=self._key(holder.name))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return Holder(holder.name, "a writer releasing it", "?", 0, time.time())
                raise
            found = _parse(current["Body"].read().decode())
            if found is not None and (found.expires or 0) > time.time():
                return found
            # expired (its holder stopped renewing): take it over, if nobody did meanwhile
            etag = self._put(holder, IfMatch=current["ETag"])
            if etag is None:
                return found or Holder(holder.name, "another writer", "?", 0, time.time())
            log.warning("lease %s had expired (%s): taken over", holder.name, found)
        with self._lock:
            self._etags[holder.token] = etag
        return None

    def renew(self, holder: Holder) -> bool:
        with self._lock:
            etag = self._etags.get(holder.token)
        if etag is None:
            return False
        fresh = replace(holder, expires=time.time() + self.ttl_s)
        new = self._put(fresh, IfMatch=etag)
        with self._lock:
            if new is None:
                self._etags.pop(holder.token, None)
                return False
            self._etags[holder.token] = new
        return True

    def read_note(self, name: str) -> dict | None:
        """A small JSON document kept beside the tables (None: none yet)."""
        from botocore.exceptions import ClientError

        key = self._key(name, NOTES)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return json.loads(body)
        except ValueError:
            return None

    def write_note(self, name: str, value: dict) -> None:
        """Write (replace) a JSON document beside the tables."""
        key = self._key(name, NOTES)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(value).encode())

    def release(self, holder: Holder) -> None:
        from botocore.exceptions import ClientError

        with self._lock:
            etag = self._etags.pop(holder.token, None)
        if etag is None:
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(holder.name), IfMatch=etag)
        except ClientError as exc:  # taken over meanwhile: it is not ours to delete
            log.warning("lease %s not released: %s", holder.name, exc)


def s3_client(options: Mapping[str, Any]):
    """A boto3 S3 client (credentials from boto3's usual sources; endpoint and region given)."""
    import boto3

    return boto3.client("s3", **options)


def _parse(text: str) -> Holder | None:
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return None


def leases_for(
    root: str, *, ttl_s: float, client_options: Mapping[str, Any] | None = None
) -> _Backend | None:
    """The lease store of a warehouse root: a folder, or s3://; None for other schemes."""
    parsed = urlparse(root)
    if parsed.scheme == "s3":
        return S3Leases(
            parsed.netloc, parsed.path, ttl_s=ttl_s, client_options=client_options or {}
        )
    if parsed.scheme in ("", "file"):
        folder = Path(parsed.path if parsed.scheme == "file" else root)
        return LocalLeases(folder / LEASES)
    return None


class Lease:
    """A held lease: `check()` before committing raises LeaseLostError if it was lost."""

    def __init__(self, backend: _Backend, holder: Holder) -> None:
        self.backend, self.holder = backend, holder
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if backend.ttl_s:
            self._thread = threading.Thread(
                target=self._heartbeat, name=f"lease {holder.name}", daemon=True
            )
            self._thread.start()

    def _heartbeat(self) -> None:
        period = self.backend.ttl_s / 3
        while not self._stop.wait(period):
            try:
                if not self.backend.renew(self.holder):
                    self._lost.set()
                    return
            except Exception as exc:  # a network error: keep trying until it expires
                log.warning("lease %s not renewed: %s", self.holder.name, exc)

    def check(self) -> None:
        """Raise LeaseLostError if another writer took this lease (it expired)."""
        if self._lost.is_set():
            raise LeaseLostError(
                f"the write lease of {self.holder.name} expired and another writer took it: "
                "stopped before committing (raise ARCHIVE_WRITER_LEASE_S if renewals are slow)"
            )

    def release(self) -> None:
        """Stop renewing and give the lease up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.backend.release(self.holder)


@contextlib.contextmanager
def hold(
    backend: _Backend | None,
    name: str,
    *,
    what: str,
    wait_s: float,
    where: str,
    on_wait=None,
) -> Iterator[Lease | None]:
    """Hold the lease `name` while the block runs: wait up to `wait_s` for another holder, then
    WriterBusyError naming it. `on_wait(line)` is told once when waiting starts. With no
    backend (a scheme without leases), the block runs unguarded."""
    if backend is None:
        yield None
        return
    now = time.time()
    holder = Holder(
        name=name,
        what=what,
        host=socket.gethostname(),
        pid=os.getpid(),
        since=now,
        expires=now + backend.ttl_s if backend.ttl_s else None,
        token=f"{os.getpid()}-{threading.get_ident()}-{random.getrandbits(64):016x}",
    )
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        current = backend.try_acquire(holder)
        if current is None:
            break
        if time.monotonic() >= deadline:
            raise WriterBusyError(
                f"{name} in the warehouse at {where} is being written by {current.describe()}; "
                f"waited {wait_s:.0f} s (ARCHIVE_WRITER_WAIT_S). Run again when it has finished "
                "(its results are then reused), or stop that run"
            )
        if not told and on_wait is not None:
            on_wait(f"{name}: waiting for the writer that holds it: {current.describe()}")
            told = True
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())) * (0.5 + random.random()))
        now = time.time()
        holder = replace(holder, since=now, expires=now + backend.ttl_s if backend.ttl_s else None)
    lease = Lease(backend, holder)
    try:
        yield lease
    finally:
        lease.release()
