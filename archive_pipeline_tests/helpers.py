"""Test helpers: free ports, loopback checks, archive snapshots, the command line."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]  # the repository root


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_over_http(app, *, log_level: str = "warning") -> Iterator[int]:
    """An ASGI app on a real uvicorn server (127.0.0.1, a free port, in a thread) for as long
    as the block runs; yields the port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def non_loopback_listeners(pids: set[int] | None = None) -> list[tuple[int, str, int]]:
    """Listening sockets of these processes (default: all descendants) not bound to loopback."""
    if pids is None:
        pids = {p.pid for p in psutil.Process().children(recursive=True)}
    bad = []
    for conn in psutil.net_connections(kind="inet"):
        if (
            conn.pid in pids
            and conn.status == psutil.CONN_LISTEN
            and not _is_loopback(conn.laddr.ip)
        ):
            bad.append((conn.pid, conn.laddr.ip, conn.laddr.port))
    return bad


def listeners_of(pids: set[int]) -> list[tuple[str, int]]:
    """All listening (ip, port) of these processes."""
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.pid in pids and c.status == psutil.CONN_LISTEN
    ]


def snapshot_tree(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under root (to prove the archive is never modified)."""
    return {
        path.relative_to(root).as_posix(): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def decade_instance(*decades: str, instance=None):
    """`instance` (a fresh in-memory one when None) with these decades as partitions: a
    decade is a dynamic partition, known to an instance once media for it were seen."""
    import dagster as dg

    from archive_pipeline.defs.partitions import register_decades

    instance = instance if instance is not None else dg.DagsterInstance.ephemeral()
    register_decades(instance, decades)
    return instance


def materialize(assets, *, partition_key: str, instance=None, **kwargs):
    """`dg.materialize` of one decade, on an instance that has it as a partition."""
    import dagster as dg

    instance = decade_instance(partition_key, instance=instance)
    return dg.materialize(assets, partition_key=partition_key, instance=instance, **kwargs)


def catalog_one_file(tmp_path: Path, shared_media: Path, instance) -> object:
    """Materialise media_catalog for 1960s over an inbox holding jfk.flac (inline, a local
    warehouse under tmp_path) on `instance`; the result."""
    import shutil

    from archive_pipeline.defs.catalog.assets import media_catalog

    (tmp_path / "inbox/1960s").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared_media / "speech/jfk.flac", tmp_path / "inbox/1960s/jfk.flac")
    return materialize(
        [media_catalog],
        partition_key="1960s",
        instance=instance,
        resources=local_resources(tmp_path / "inbox", tmp_path / "wh"),
    )


def local_resources(inbox: Path, warehouse: Path, *, ray: str = "inline", **given) -> dict:
    """Every resource of the pipeline for a test: the inbox and warehouse folders given, Ray
    inline (or `ray`), and the defaults of the others unless `given` (by resource key)."""
    from archive_pipeline.defs.resources import (
        CheckSettings,
        LanceWarehouse,
        LocalMediaStore,
        RayResource,
        SearchIndex,
        SpeechModels,
        VisionModels,
    )

    return {
        "media_store": LocalMediaStore(root=str(inbox)),
        "warehouse": LanceWarehouse(root=str(warehouse)),
        "ray": RayResource(address=ray),
        "speech_models": SpeechModels(),
        "vision_models": VisionModels(),
        "search_index": SearchIndex(),
        "check_settings": CheckSettings(),
        **given,
    }


def chromium_browser():
    """Debian's chromium, headless, driven by Selenium through Debian's chromedriver."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "make test installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--mute-audio",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def run_cli(
    home: Path,
    *args: str,
    env_extra: dict | None = None,
    pids: set[int] | None = None,
    timeout: int = 900,
) -> subprocess.CompletedProcess:
    """`archive-pipeline <args>` on ARCHIVE_HOME `home` (nothing else of the caller's
    ARCHIVE_/DAGSTER_ environment); `pids` collects the pids of the command and of every
    process under it while it runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    env |= {"ARCHIVE_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "archive-pipeline"), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if pids is not None:
        pids.add(proc.pid)
        threading.Thread(target=_collect_tree, args=(proc, pids), daemon=True).start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        out, err = proc.communicate()
        message = f"archive-pipeline {' '.join(args)}: no end in {timeout} s\n{out[-3000:]}"
        raise AssertionError(message) from exc
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _collect_tree(proc: subprocess.Popen, pids: set[int]) -> None:
    """Every 0.5 s (a walk of /proc: more often costs a run of minutes CPU-seconds)."""
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            pids.update(child.pid for child in psutil.Process(proc.pid).children(recursive=True))
        time.sleep(0.5)


RAY_TEMP = (Path("/tmp/ray"), Path("/tmp/archive-ray"))  # Ray's default; the short-path fallback


def ray_folders() -> set[Path]:
    """Ray's session folders in its temp folders now."""
    return {p for folder in RAY_TEMP if folder.exists() for p in folder.iterdir()}


def ray_left_behind(before: set[Path], pids: set[int]) -> list[Path]:
    """Ray folders made since `before` by one of `pids` (a Ray session is named by the pid of
    the process that started it: /tmp/archive-ray/<pid>, /tmp/ray/session_<time>_<pid>). Other
    tests' Ray may write there at the same time (`make test` runs two lanes at once)."""
    left = []
    for path in ray_folders() - before:
        owner = path.name.rsplit("_", 1)[-1]
        if owner.isdigit() and int(owner) in pids:
            left.append(path)
    return left


def entries(folder: Path) -> list[str]:
    """Every path under `folder` (none when it does not exist)."""
    return sorted(str(p) for p in folder.rglob("*")) if folder.exists() else []
