"""Stop a local Ray whose driver died without stopping it (kill -9 of a run).

`ray.init()` starts Ray's daemons (GCS, raylet, monitors) as children of the driver; a driver
killed with SIGKILL leaves them running for ever. `watch()` starts this module as a small
detached process that polls the driver: when the driver is gone while Ray's daemons still
run, it stops them and their children (workers, agents); when the daemons are gone (a normal
`ray.shutdown()`), it exits.

    python -m archive_pipeline.core.reaper [--remove DIR] <driver pid> <start time> <daemon pid>...

With --remove, the session folder the dead driver's Ray used is removed once Ray is stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time

from archive_pipeline.config import settings

POLL_S = 1.0


def alive(pid: int, started: float | None = None) -> bool:
    """Whether the process `pid` runs (and, with `started`, is the one started then)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > 1.0:
            return False  # the pid was reused
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _tree(pids: list[int]) -> dict[int, float]:
    """{pid: start time} of these processes and all their descendants now."""
    import psutil

    found = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                found[process.pid] = process.create_time()
        except psutil.Error:
            continue
    return found


def _stop(known: dict[int, float]) -> None:
    """Terminate, then kill, the processes still running under the same pid and start time
    (Ray's agents outlive a raylet that exits first, so the tree is the one last seen)."""
    import psutil

    processes = []
    for pid, started in known.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if abs(process.create_time() - started) <= 1.0:
                processes.append(process)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, left = psutil.wait_procs(processes, timeout=3)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()


def main(argv: list[str]) -> int:
    """Poll until the daemons are gone (exit) or the driver is (stop them, then exit)."""
    remove = None
    if argv and argv[0] == "--remove":
        remove, argv = argv[1], argv[2:]
    driver, started, daemons = int(argv[0]), float(argv[1]), [int(p) for p in argv[2:]]
    known: dict[int, float] = {}
    while True:
        running = [pid for pid in daemons if alive(pid)]
        if not alive(driver, started):  # daemons that exited left their children behind
            _stop({**known, **_tree(running)})
            if remove:
                shutil.rmtree(remove, ignore_errors=True)
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(remove))
            return 0
        if not running:  # a normal ray.shutdown()
            return 0
        known = _tree(running)  # workers and agents come and go while the run lasts
        time.sleep(POLL_S)


def watch(*, remove: os.PathLike | str | None = None) -> subprocess.Popen | None:
    """Start the reaper for the local Ray this process just started (its daemons are this
    process's children that run Ray's session); None when there are none. `remove`: Ray's
    session folder, removed if the driver dies."""
    import psutil

    me = psutil.Process()
    daemons = []
    for child in me.children():
        try:
            if any("/ray/" in part or "ray::" in part for part in child.cmdline()):
                daemons.append(child.pid)
        except psutil.Error:
            continue
    if not daemons:
        return None
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            __name__,
            *(["--remove", str(remove)] if remove else []),
            str(me.pid),
            repr(me.create_time()),
            *map(str, daemons),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the driver; not in its process group
        env={**settings.environment(), "PYTHONPATH": os.pathsep.join(sys.path)},
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
