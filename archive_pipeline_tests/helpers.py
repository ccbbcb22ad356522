"""Test helpers: free ports, loopback checks, archive snapshots."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
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
