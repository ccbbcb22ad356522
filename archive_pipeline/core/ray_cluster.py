"""Ray itself: a local Ray on 127.0.0.1 (token auth, its session folder, start retries), a
cluster's address reached in time, and Ray stopped with this process's workers."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from archive_pipeline.config import settings
from archive_pipeline.core import actor_pool

log = logging.getLogger(__name__)


LOOPBACK = "127.0.0.1"


class RayConnectError(ConnectionError):
    """The configured Ray cluster could not be reached in time."""


def tcp_reachable(address: str, timeout_s: float) -> None:
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


def bind_loopback_only() -> None:
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


def quiet_token_auth_notice() -> None:
    """Drop Ray's notice that a new local cluster uses token authentication (its default, and
    what we want). Setting RAY_AUTH_MODE=token instead would silence it too, but only if set
    before Ray is first imported: a driver that read the config earlier then fails to connect.
    (addFilter ignores a filter already there, so repeated starts add nothing.)"""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    logger.addFilter(_not_token_auth_notice)


# Ray's Unix sockets live at <temp>/session_<date>_<pid>/sockets/<name>; a socket path holds
# at most 107 bytes, so a longer temp folder is replaced by a short one in the system's.
MAX_RAY_TEMP_CHARS = 40


CONNECT_TIMEOUT_S = 30  # how long a cluster address may take to answer before the run fails


LOCAL_AUTH_TOKEN = uuid.uuid4().hex + uuid.uuid4().hex


def ray_session_root(temp_dir: str) -> Path:
    """This process's own Ray temp folder: <temp_dir>/<pid>, or /tmp/archive-ray/<pid> when
    temp_dir is too long for Ray's sockets."""
    base = Path(temp_dir)
    if len(str(base)) > MAX_RAY_TEMP_CHARS:
        base = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / "archive-ray"
    return base / str(os.getpid())


LOCAL_SESSION: list[Path] = []  # the session folder of the local Ray this process started


def stop_ray() -> bool:
    """Stop Ray in this process (its warm workers first) and remove the session folder of a
    local Ray it started; or, when it had joined warm model workers, leave them and disconnect.
    Whether it had joined them."""
    import ray

    shared = actor_pool.reset()
    if ray.is_initialized():
        ray.shutdown()
    for folder in LOCAL_SESSION:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the shared short base, once no run uses it
            folder.parent.rmdir()
    LOCAL_SESSION.clear()
    return shared


def transient_start_error(exc: Exception) -> bool:
    text = str(exc)
    return "timed out during startup" in text or "Failed to connect to GCS" in text


class RayStartError(RuntimeError):
    """A local Ray did not start (after the bounded retries)."""
